"""Class labels: the published class names of the named sets, and the class-subfolder rule that
labels a folder or zip of images by the folder each image lies in (issue 24)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

DIGITS = tuple("0123456789")

# The names as each set's authors publish them, in label order. SVHN's files store digit 0 as 10;
# its reader maps 10 -> 0, so there too label k is the digit k.
_CIFAR100 = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab
crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard
lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom
oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider
squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train
trout tulip turtle wardrobe whale willow_tree wolf woman worm"""
PUBLISHED: dict[str, tuple[str, ...]] = {
    "mnist": DIGITS,
    "svhn": DIGITS,
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),  # the hiragana, romanised
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ),
    "cifar100": tuple(_CIFAR100.split()),  # the fine labels
    "stl10": ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"),
}  # fmt: skip


class Labelling(NamedTuple):
    """Labels int64 (N,) and their class names, or (None, None, why there are none)."""

    labels: np.ndarray | None
    class_names: tuple[str, ...] | None
    reason: str | None


def unlabelled(reason: str) -> Labelling:
    return Labelling(None, None, reason)


def names_from_text(raw: bytes, expected: int) -> tuple[str, ...] | None:
    """Class names from a set's own names file (one per line), if it has `expected` of them."""
    names = tuple(line.strip() for line in raw.decode("utf-8", "replace").splitlines())
    names = tuple(n for n in names if n)
    return names if len(names) == expected else None


def class_folders(rels: Sequence[str], kind: str = "folder") -> Labelling:
    """Labels of images by their class subfolder, from their relative POSIX paths.

    The rule: a single folder that holds every image is looked through (`pets.zip` holding
    `pets/cat/..`, `pets/dog/..`). Below that, when every image lies inside a first-level
    subfolder, the subfolders are the classes: names sorted (Python string order), label = index
    of the image's first-level folder, deeper nesting belonging to it (`cat/indoor/1.jpg` is a
    cat). Loose images beside subfolders, or no subfolders at all, give no labels, and the reason
    says what was found (`kind` names the container: "folder", "zip archive").
    """
    parts = [rel.split("/") for rel in rels]
    depth = 0
    while parts and all(len(p) > depth + 1 for p in parts) and len({p[depth] for p in parts}) == 1:
        depth += 1
    inside = f", inside {'/'.join(parts[0][:depth])}/" if depth else ""
    folders = sorted({p[depth] for p in parts if len(p) > depth + 1})
    loose = sum(len(p) == depth + 1 for p in parts)
    if not folders:
        return unlabelled(f"a {kind} with {loose} loose images and no class subfolders{inside}")
    if loose:
        shown = ", ".join(folders[:3]) + (", ..." if len(folders) > 3 else "")
        return unlabelled(
            f"a {kind} with {loose} loose images beside {len(folders)} subfolders ({shown}){inside}"
            "; class subfolders need every image inside one"
        )
    index = {name: i for i, name in enumerate(folders)}
    return Labelling(np.array([index[p[depth]] for p in parts], np.int64), tuple(folders), None)
