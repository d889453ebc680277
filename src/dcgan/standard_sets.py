"""The standard datasets by name (mnist, fashion-mnist, kmnist, cifar10, cifar100, svhn, stl10,
celeba):
where their files come from, how to parse them without torchvision or pickle, and their usual
preprocessing, converted once into the prepared uint8 cache with their labels and class names.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .classes import PUBLISHED, names_from_text
from .config import default_image_size
from .downloads import RemoteFile, ensure_files, verify
from .errors import DataError, UsageError
from .folders import Sized, load_folder
from .matfile import iter_arrays
from .prepared import (
    PREPARE_VERSION,
    ImageSet,
    PreparedWriter,
    default_cache_dir,
    interruptible,
    luminance,
    prepared_dir,
    read_prepared,
)

BLOCK = 4096  # images converted per block: bounded memory whatever the set's size
CELEBA_CROP = 108  # the DCGAN papers' centre crop of the 178x218 aligned faces


@dataclass(frozen=True)
class StandardSet:
    name: str
    kind: str  # idx | cifar | svhn | stl | celeba: which parser
    native_size: int
    channels: int
    splits: dict[str, tuple[RemoteFile, ...]]
    about: str


def _idx_set(name: str, base_urls: list[str], md5s: list[str], about: str) -> StandardSet:
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    names += ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    files = [RemoteFile(n, m, tuple(b + n for b in base_urls)) for n, m in zip(names, md5s)]
    return StandardSet(
        name, "idx", 28, 1, {"train": tuple(files[:2]), "test": tuple(files[2:])}, about
    )


_TORONTO = "https://www.cs.toronto.edu/~kriz/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"
_CIFAR10 = RemoteFile(
    "cifar-10-binary.tar.gz",
    "c32a1d4ab5d03f1284b67883e8d87530",
    (_TORONTO + "cifar-10-binary.tar.gz",),
)
_CIFAR100 = RemoteFile(
    "cifar-100-binary.tar.gz",
    "03b5dce01913d631647c71ecec9e9cb8",
    (_TORONTO + "cifar-100-binary.tar.gz",),
)
_STL10 = RemoteFile(
    "stl10_binary.tar.gz",
    "91f7769df0f17e558f3565bffb0c7dfb",
    ("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",),
)
_CELEBA_ZIP = RemoteFile("img_align_celeba.zip", "00d2c5bc6d35e252742224ab0c1e8fcb")
_CELEBA_SPLITS = RemoteFile("list_eval_partition.txt", "d32c9cbf5e040fd4025c592c306e6668")

# md5s as torchvision's dataset classes list them; CIFAR's binary archives as on the CIFAR page
STANDARD_SETS: dict[str, StandardSet] = {
    s.name: s
    for s in (
        _idx_set(
            "mnist",
            ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
            ["f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
             "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"],
            "handwritten digits, 60k/10k, 28 px gray",
        ),
        _idx_set(
            "fashion-mnist",
            ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
            ["8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
             "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"],
            "Zalando clothing, 60k/10k, 28 px gray",
        ),
        _idx_set(
            "kmnist",
            ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
            ["bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
             "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"],
            "Kuzushiji (cursive Japanese) characters, 60k/10k, 28 px gray",
        ),
        StandardSet("cifar10", "cifar", 32, 3, {"train": (_CIFAR10,), "test": (_CIFAR10,)},
                    "10 classes of small photos, 50k/10k, 32 px RGB"),
        StandardSet("cifar100", "cifar", 32, 3, {"train": (_CIFAR100,), "test": (_CIFAR100,)},
                    "100 classes of small photos, 50k/10k, 32 px RGB"),
        StandardSet(
            "svhn", "svhn", 32, 3,
            {s: (RemoteFile(f"{s}_32x32.mat", m, (f"{_SVHN}{s}_32x32.mat",)),) for s, m in (
                ("train", "e26dedcc434d2e4c54c9b2d4a06d8373"),
                ("test", "eb5a983be6a315427106f1b164d9cef3"),
                ("extra", "a93ce644f1a588dc4d68dda5feec44a7"))},
            "house numbers from Street View, 73k/26k/531k, 32 px RGB",
        ),
        StandardSet("stl10", "stl", 96, 3,
                    {s: (_STL10,) for s in ("train", "test", "unlabeled", "train+unlabeled")},
                    "10 classes of photos, 5k/8k labelled + 100k unlabelled, 96 -> 64 px RGB"),
        StandardSet("celeba", "celeba", 178, 3,
                    {s: (_CELEBA_ZIP, _CELEBA_SPLITS) for s in ("train", "valid", "test")}
                    | {"all": (_CELEBA_ZIP,)},
                    "aligned celebrity faces, 163k/20k/20k, centre crop 108 -> 64 px"),
    )
}  # fmt: skip
_CIFAR_LAYOUT = {  # archive folder, member files per split, label bytes per record
    "cifar10": ("cifar-10-batches-bin", {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}, 1),
    "cifar100": ("cifar-100-binary", {"train": ["train.bin"], "test": ["test.bin"]}, 2),
}  # fmt: skip
_NAMES_FILES = {  # the class names as the archives carry them (else classes.PUBLISHED)
    "cifar10": "cifar-10-batches-bin/batches.meta.txt",
    "cifar100": "cifar-100-binary/fine_label_names.txt",
    "stl10": "stl10_binary/class_names.txt",
}
_CELEBA_PARTS = {"train": "0", "valid": "1", "test": "2"}
_STL_MEMBERS = {  # split -> (images, labels or None) in stl10_binary/
    "train": [("train_X.bin", "train_y.bin")],
    "test": [("test_X.bin", "test_y.bin")],
    "unlabeled": [("unlabeled_X.bin", None)],
    "train+unlabeled": [("train_X.bin", "train_y.bin"), ("unlabeled_X.bin", None)],
}


def raw_dir(data_dir: Path | str | None, name: str) -> Path:
    """Where a set's downloaded files live: <data-dir>/<name>, default $DCGAN_HOME/datasets/<name>."""
    root = Path(data_dir).expanduser().absolute() if data_dir else default_cache_dir() / "datasets"
    return root / name


def get_set(name: str, split: str) -> StandardSet:
    spec = STANDARD_SETS[name]
    if split not in spec.splits:
        raise UsageError(f"--split {split} is not one of {', '.join(spec.splits)} for {name}")
    return spec


def prepared_key(spec: StandardSet, split: str, image_size: int, channels: int) -> str:
    """The source fingerprint: the md5s of the official files plus the preprocessing."""
    md5s = ",".join(f.md5 for f in spec.splits[split])
    text = f"v{PREPARE_VERSION}|{spec.name}|{split}|{image_size}|{channels}|{md5s}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_standard(
    name: str,
    split: str = "train",
    image_size: int | None = None,
    channels: int | None = None,
    cache_dir: Path | None = None,
    data_dir: Path | None = None,
    progress: Callable | None = None,
    on_bytes: Callable | None = None,
) -> ImageSet:
    """A standard set as uint8 (N, C, S, S) from the prepared cache (memory-mapped), preparing it
    first if needed: no network access when the cache or the verified files are already there."""
    spec = get_set(name, split)
    size = image_size or default_image_size(spec.name)
    c = channels or spec.channels
    folder = raw_dir(data_dir, name)
    if spec.kind == "celeba":
        return _load_celeba(spec, split, size, c, folder, cache_dir, progress)
    cache = prepared_dir(cache_dir, f"{name}-{split}", prepared_key(spec, split, size, c))
    cached = read_prepared(cache)
    if cached is not None:
        return cached
    paths = ensure_files(name, list(spec.splits[split]), folder, on_bytes)
    blocks, count, labels, names = _READERS[spec.kind](spec, split, paths)
    with interruptible(f"{name} {split}"), PreparedWriter(cache, count, (c, size, size)) as out:
        ticks = _ticker(progress, count)
        done = 0
        for block in blocks:
            block = fit_images(block, spec.native_size, size, c)
            out.images[done : done + len(block)] = block
            done += len(block)
            ticks(len(block))
        if done != count:
            raise DataError(f"{name}: expected {count} images in {folder}, found {done}")
        source = {"kind": "standard", "dataset": name, "split": split, "folder": str(folder)}
        source |= {"files": {f.name: f.md5 for f in spec.splits[split]}}
        labels = labels()
        missing = int((labels < 0).sum())
        classes = dict(class_names=None if missing else names or PUBLISHED[name])
        if missing:
            classes["unlabelled"] = f"the {split} split, where {missing} of {count} have no label"
        return out.commit(f"{name}-{split}", source, labels=labels, **classes)


def _ticker(progress: Callable | None, total: int) -> Callable[[int], None]:
    """Advance a progress bar given as an iterable wrapper (e.g. tqdm) by k items at a time."""
    if progress is None:
        return lambda k: None
    it = iter(progress(Sized(iter(range(total)), total)))
    return lambda k: [next(it, None) for _ in range(k)] and None


def fit_images(block: np.ndarray, native: int, size: int, channels: int) -> np.ndarray:
    """The usual preprocessing of a block uint8 (k, C, native, native): MNIST-likes padded 28 -> 32
    (the DCGAN-at-32 convention), otherwise Lanczos-resized; channels repeated or luma-reduced."""
    if size == native:
        pass
    elif native == 28 and size == 32:
        block = np.pad(block, ((0, 0), (0, 0), (2, 2), (2, 2)))
    else:
        block = np.stack([_resize(im, size) for im in block])
    if block.shape[1] == 1 and channels == 3:
        block = np.repeat(block, 3, axis=1)
    elif block.shape[1] == 3 and channels == 1:
        block = luminance(block)
    return np.ascontiguousarray(block)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) uint8 -> (C, size, size)."""
    hwc = image.transpose(1, 2, 0)
    pil = Image.fromarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc)
    out = np.asarray(pil.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0))
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)


# ---------------------------------------------------------------------------------------------
# parsers: each returns (blocks of uint8 (k, C, H, W), count, a function giving the labels, the
# class names found in the files or None)


def _list_tar(path: Path, names_file: str, expected: int) -> tuple[dict[str, int], tuple | None]:
    """Member sizes by name, and the class names in `names_file`, read as the listing passes it."""
    sizes, names = {}, None
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            sizes[member.name] = member.size
            if member.name == names_file and member.isfile() and member.size < 1 << 20:
                names = names_from_text(tar.extractfile(member).read(), expected)
    return sizes, names


def _read_idx_set(spec: StandardSet, split: str, paths: list[Path]):
    images_path, labels_path = paths
    with gzip.open(images_path, "rb") as f:
        head = f.read(16)
    magic, count, rows, cols = (int.from_bytes(head[i : i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051 or (rows, cols) != (28, 28):
        raise DataError(f"{images_path} is not an IDX image file of 28x28 images")

    def blocks() -> Iterator[np.ndarray]:
        with gzip.open(images_path, "rb") as f:
            f.read(16)
            while raw := f.read(BLOCK * 784):
                yield np.frombuffer(raw, np.uint8).reshape(-1, 1, 28, 28)

    def labels() -> np.ndarray:
        raw = gzip.decompress(labels_path.read_bytes())
        if int.from_bytes(raw[:4], "big") != 2049 or len(raw) - 8 != count:
            raise DataError(f"{labels_path} is not an IDX label file with {count} labels")
        return np.frombuffer(raw, np.uint8, offset=8)

    return blocks(), count, labels, None


def _read_cifar_set(spec: StandardSet, split: str, paths: list[Path]):
    """The binary version (no pickle): records of label byte(s) + 3072 pixel bytes, R then G
    then B planes, each 32x32 row-major."""
    folder, by_split, label_bytes = _CIFAR_LAYOUT[spec.name]
    members = by_split[split]
    record = label_bytes + 3072
    sizes, names = _list_tar(paths[0], _NAMES_FILES[spec.name], len(PUBLISHED[spec.name]))
    missing = [m for m in members if f"{folder}/{m}" not in sizes]
    if missing:
        raise DataError(f"{paths[0]} has no {folder}/{missing[0]}")
    count = sum(sizes[f"{folder}/{m}"] // record for m in members)
    found: list[np.ndarray] = []

    def blocks() -> Iterator[np.ndarray]:
        with tarfile.open(paths[0], "r:gz") as tar:
            for member in members:
                f = tar.extractfile(f"{folder}/{member}")
                if f is None:
                    raise DataError(f"{paths[0]} has no {folder}/{member}")
                while raw := f.read(BLOCK * record):
                    rows = np.frombuffer(raw, np.uint8).reshape(-1, record)
                    found.append(rows[:, label_bytes - 1].copy())  # CIFAR-100: the fine label
                    yield rows[:, label_bytes:].reshape(-1, 3, 32, 32)

    return blocks(), count, lambda: np.concatenate(found), names


def _read_svhn_set(spec: StandardSet, split: str, paths: list[Path]):
    arrays = iter_arrays(paths[0])
    first = next(arrays, None)
    found: dict[str, np.ndarray] = {}
    while first is not None and first.name != "X":  # y may come first
        found[first.name] = first.read_all()
        first = next(arrays, None)
    if first is None or len(first.dims) != 4 or first.dims[:3] != (32, 32, 3):
        raise DataError(f"{paths[0]} has no 32x32x3xN array X")
    x = first

    def blocks() -> Iterator[np.ndarray]:
        left = x.dims[3]
        while left > 0:
            hwcn = x.read_rows(BLOCK)
            left -= hwcn.shape[3]
            yield hwcn.transpose(3, 2, 0, 1).astype(np.uint8)

    def labels() -> np.ndarray:
        for array in arrays:
            found[array.name] = array.read_all()
        y = found.get("y")
        if y is None:
            raise DataError(f"{paths[0]} has no labels y")
        return np.asarray(y).reshape(-1).astype(np.int64) % 10  # SVHN stores digit 0 as 10

    return blocks(), x.dims[3], labels, None


def _read_stl_set(spec: StandardSet, split: str, paths: list[Path]):
    """STL-10's binary archive: X files of uint8 (N, 3, 96, 96) with each plane stored column-
    major (so transposed on reading), y files of one byte per image, classes 1..10 (-> 0..9);
    unlabelled images get label -1, as torchvision gives them."""
    image_bytes = 3 * 96 * 96
    sizes, names = _list_tar(paths[0], _NAMES_FILES["stl10"], 10)
    wanted = [f"stl10_binary/{x}" for x, _ in _STL_MEMBERS[split]]
    missing = [m for m in wanted if m not in sizes]
    if missing:
        raise DataError(f"{paths[0]} has no {missing[0]}")
    counts = [sizes[m] // image_bytes for m in wanted]

    def blocks() -> Iterator[np.ndarray]:
        with tarfile.open(paths[0], "r:gz") as tar:
            for member in wanted:
                f = tar.extractfile(member)
                while raw := f.read(BLOCK * image_bytes):
                    yield np.frombuffer(raw, np.uint8).reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)

    def labels() -> np.ndarray:
        out = []
        with tarfile.open(paths[0], "r:gz") as tar:
            for (_, y), n in zip(_STL_MEMBERS[split], counts):
                if y is None:
                    out.append(np.full(n, -1, np.int64))
                    continue
                raw = tar.extractfile(f"stl10_binary/{y}").read()
                if len(raw) != n:
                    raise DataError(f"{paths[0]}: {y} has {len(raw)} labels for {n} images")
                out.append(np.frombuffer(raw, np.uint8).astype(np.int64) - 1)
        return np.concatenate(out)

    return blocks(), sum(counts), labels, names


_READERS = {
    "idx": _read_idx_set,
    "cifar": _read_cifar_set,
    "svhn": _read_svhn_set,
    "stl": _read_stl_set,
}


# ---------------------------------------------------------------------------------------------
# CelebA: a local folder (or the zip) of aligned JPEGs


def _load_celeba(spec, split, size, channels, folder: Path, cache_dir, progress) -> ImageSet:
    """Google Drive serves CelebA behind a confirmation page, so we do not download it: the user
    puts img_align_celeba.zip (or its extracted folder) and list_eval_partition.txt in `folder`."""
    images = folder / "img_align_celeba"
    if not images.is_dir():
        zip_path = folder / _CELEBA_ZIP.name
        if not zip_path.is_file():
            raise DataError(
                f"celeba: missing {_CELEBA_ZIP.name} (Google Drive, see "
                "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html); put it, or its extracted "
                f"img_align_celeba/ folder, and {_CELEBA_SPLITS.name} in {folder}"
            )
        if not verify(zip_path, _CELEBA_ZIP):
            raise DataError(
                f"celeba: {zip_path} fails its md5 check ({_CELEBA_ZIP.md5}); replace it"
            )
        _extract(zip_path, images)
    only = None
    if split != "all":
        parts = folder / _CELEBA_SPLITS.name
        if not parts.is_file():
            raise DataError(
                f"celeba: --split {split} needs {_CELEBA_SPLITS.name} in {folder} "
                "(from the CelebA page), or use --split all"
            )
        want = _CELEBA_PARTS[split]
        only = {
            n
            for n, p in (ln.split() for ln in parts.read_text().splitlines() if ln.strip())
            if p == want
        }
    data = load_folder(
        images, size, channels, cache_dir, progress,
        crop=CELEBA_CROP, only=only, name=f"celeba-{split}",
    )  # fmt: skip
    data.unlabelled_reason = "CelebA's 40 binary attributes are not classes"
    return data


def _extract(zip_path: Path, dest: Path) -> None:
    """Unzip into a temporary folder beside `dest`, then rename: never a half-extracted set."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract.", dir=dest.parent))
    try:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(tmp)  # zipfile drops '..' and absolute paths in member names
        inner = tmp / dest.name
        os.replace(inner if inner.is_dir() else tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def describe_standard(data_dir: Path | None, cache_dir: Path | None) -> list[dict]:
    """For `dcgan data list`: each set, its splits, whether its raw files and caches exist."""
    rows = []
    for spec in STANDARD_SETS.values():
        folder = raw_dir(data_dir, spec.name)
        on_disk = sorted(
            {f.name for fs in spec.splits.values() for f in fs if (folder / f.name).exists()}
        )
        prepared = sorted(
            p.name for p in (Path(cache_dir or default_cache_dir()) / "prepared").glob(f"{spec.name}-*")
            if (p / "meta.json").is_file()
        )  # fmt: skip
        rows.append({"name": spec.name, "splits": list(spec.splits), "about": spec.about,
                     "folder": str(folder), "files": on_disk, "prepared": prepared})  # fmt: skip
    return rows
