"""Sources of training images as prepared uint8 arrays, and the seeded batch order.

Every source (the bundled digits, a standard set by name, a folder of pictures, a zip of them)
becomes uint8 (N, C, H, W) at the model's size, with labels and class names where it has them; all but the bundled digits go through the prepared cache on disk
(prepared.py), memory-mapped, so the training loop never decodes an image. No torch here: the
NumPy engine shares this module and every module it imports.
"""

from __future__ import annotations

import difflib
import gzip
import os
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from .archives import is_archive, load_archive
from .classes import DIGITS
from .errors import DataError, UsageError
from .folders import IMAGE_EXTENSIONS, decode_image, list_image_files, load_folder
from .prepared import ImageSet, default_cache_dir
from .standard_sets import STANDARD_SETS, load_standard

__all__ = [
    "IMAGE_EXTENSIONS",
    "STANDARD_SETS",
    "ImageSet",
    "batch_indices",
    "decode_image",
    "default_cache_dir",
    "epoch_order",
    "list_image_files",
    "load_digits",
    "load_digits_raw",
    "load_archive",
    "load_folder",
    "load_source",
    "load_standard",
    "require_labels",
    "steps_per_epoch",
]


# ---------------------------------------------------------------------------------------------
# bundled digits


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The bundled MNIST test set: images uint8 (10000, 28, 28) (0 = background), labels (10000,)."""
    folder = resources.files("dcgan") / "assets" / "mnist"
    images = _read_idx(folder / "t10k-images-idx3-ubyte.gz", 2051).reshape(-1, 28, 28)
    labels = _read_idx(folder / "t10k-labels-idx1-ubyte.gz", 2049)
    return images, labels


def _read_idx(path, magic: int) -> np.ndarray:
    with path.open("rb") as f:
        raw = gzip.decompress(f.read())
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path} is not an IDX file with magic {magic} (found {found})")
    ndim = magic & 0xFF
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)


def load_digits(image_size: int = 28, channels: int = 1) -> ImageSet:
    """The bundled digits at the model's size: padded to 32 (the usual MNIST-at-32 convention),
    resized for other sizes; channels repeated for RGB models."""
    raw, labels = load_digits_raw()
    if image_size == 28:
        images = raw
    elif image_size == 32:
        images = np.pad(raw, ((0, 0), (2, 2), (2, 2)))
    else:
        images = np.stack([_resize_gray(im, image_size) for im in raw])
    images = np.repeat(images[:, None], channels, axis=1)
    return ImageSet(
        images=np.ascontiguousarray(images),
        name="digits",
        labels=labels.astype(np.int64),
        class_names=DIGITS,
    )


def _resize_gray(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


# ---------------------------------------------------------------------------------------------
# choosing a source, and the batch order


def load_source(
    source: str,
    image_size: int,
    channels: int | None,
    cache_dir: Path | None = None,
    progress: Callable | None = None,
    *,
    data_dir: Path | None = None,
    split: str | None = None,
    on_bytes: Callable | None = None,
) -> ImageSet:
    """Resolve a --data value: "digits" (the default, bundled), a standard set's name (see
    STANDARD_SETS; `split`, default train, and raw files under `data_dir`), a folder path
    (write ./mnist for a folder that shares a set's name) or a zip archive of images."""
    if source == "digits":
        return load_digits(image_size, channels or 1)
    if source in STANDARD_SETS:
        return load_standard(
            source, split or "train", image_size, channels, cache_dir, data_dir, progress, on_bytes
        )
    folder = Path(source).expanduser()
    if not folder.exists() and os.sep not in source and "/" not in source:
        # a bare name that is neither a known set nor a folder: most likely a misspelt set
        known = ["digits", *STANDARD_SETS]
        close = difflib.get_close_matches(source, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise DataError(
            f"--data {source} is not a known dataset nor an existing folder or zip; {hint}"
            f"known datasets: {', '.join(known)} (see dcgan data list)"
        )
    if split not in (None, "train"):
        raise DataError(f"--split {split} applies to the standard sets, not to {source}")
    if is_archive(folder):
        return load_archive(folder, image_size, channels, cache_dir, progress)
    return load_folder(folder, image_size, channels, cache_dir, progress)


def require_labels(data: ImageSet, source: str) -> None:
    """A one-line UsageError unless `data` has class labels (for --conditional): what was found
    instead comes from `data.unlabelled_reason`."""
    if data.labels is not None and data.num_classes:
        return
    found = data.unlabelled_reason or f"{len(data)} images without class labels"
    raise UsageError(f"--conditional needs labels: {source} has none ({found})")


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch (the ragged last batch is dropped; a set smaller than one batch
    still gives one batch, with repeats)."""
    return max(1, n // batch_size)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> tuple[int, np.ndarray]:
    """(epoch, indices) of the images in global training step `step`.

    The order is a pure function of (seed, epoch), so resuming at any step reproduces it exactly.
    """
    epoch, i = divmod(step, steps_per_epoch(n, batch_size))
    order = epoch_order(n, seed, epoch)
    if n < batch_size:
        return epoch, np.resize(order, batch_size)
    return epoch, order[i * batch_size : (i + 1) * batch_size]


@lru_cache(maxsize=2)
def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The seeded permutation of one epoch (cached: every step of the epoch reuses it)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    order.flags.writeable = False
    return order
