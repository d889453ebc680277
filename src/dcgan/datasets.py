"""Sources of training images as prepared uint8 arrays, and the seeded batch order.

Every source (the bundled digits, a folder of pictures; the standard downloadable sets plug in
through `SOURCES`) is decoded once into a uint8 array (N, C, H, W) at the model's size. Folders
are cached on disk under the cache directory, keyed by a fingerprint of the files and the
preprocessing, so the training loop never decodes an image and the next run skips decoding.
No torch here: the NumPy engine shares this module.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from .checkpoint import atomic_write
from .errors import DataError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
PREPARE_VERSION = 1  # bump when decoding/resizing changes, so old caches are not reused
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass
class ImageSet:
    """Prepared images: uint8 (N, C, H, W), optional integer labels, and how they were made."""

    images: np.ndarray
    name: str
    labels: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)  # files that could not be decoded
    cache_path: Path | None = None
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.images)


def default_cache_dir() -> Path:
    """$DCGAN_HOME if set, else ~/.cache/dcgan."""
    return Path(os.environ.get("DCGAN_HOME") or Path.home() / ".cache" / "dcgan")


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
    return ImageSet(images=np.ascontiguousarray(images), name="digits", labels=labels.copy())


def _resize_gray(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))


# ---------------------------------------------------------------------------------------------
# a folder of images


def list_image_files(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, sorted by relative path (symlinked folders are not
    followed, so a link loop cannot recurse forever)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [Path(root, f) for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def folder_fingerprint(
    folder: Path, files: list[Path], image_size: int, channels: int | None
) -> str:
    """A hash of every file's path, size and mtime plus the preprocessing settings."""
    h = hashlib.sha256(f"v{PREPARE_VERSION}|{image_size}|{channels}".encode())
    for p in files:
        st = p.stat()
        h.update(f"|{p.relative_to(folder).as_posix()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def decode_image(path: Path, image_size: int) -> tuple[np.ndarray, bool]:
    """Decode one file to uint8 RGB (H, W, 3) center-cropped and resized to image_size square.

    Returns (pixels, is_gray). Transparency (RGBA, LA, palette with transparency) is composited onto
    white; 16-bit grayscale is scaled down, not clipped. Raises OSError/ValueError on bad files.
    """
    with Image.open(path) as img:
        img.seek(0)  # the first frame of an animation
        img.load()
        gray = img.mode in _GRAY_MODES
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            wide = np.asarray(img, dtype=np.float64)
            peak = 65535.0 if img.mode.startswith("I;16") or wide.max() > 255 else 255.0
            img = Image.fromarray(np.clip(wide * (255.0 / peak), 0, 255).astype(np.uint8))
        if img.mode == "P":
            img = img.convert("RGBA")
            rgba = np.asarray(img)
            gray = bool(
                np.all(rgba[..., 0] == rgba[..., 1]) and np.all(rgba[..., 1] == rgba[..., 2])
            )
        if img.mode in ("RGBA", "LA", "PA"):
            background = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, img.convert("RGBA"))
        img = _center_square(img.convert("RGB"))
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.asarray(img, dtype=np.uint8), gray


def _center_square(img: Image.Image) -> Image.Image:
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def load_folder(
    folder: Path,
    image_size: int,
    channels: int | None = None,
    cache_dir: Path | None = None,
    progress: Callable | None = None,
) -> ImageSet:
    """Decode every image under `folder` once into uint8 (N, C, S, S), cached by fingerprint.

    channels None means 1 when every image is grayscale, else 3. Undecodable files are skipped
    and listed in `ImageSet.skipped`. `progress`, if given, wraps the file iterator (e.g. tqdm).
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"--data {folder} is not a folder of images")
    files = list_image_files(folder)
    if not files:
        exts = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        raise DataError(f"no images ({exts}) found under {folder}")
    key = folder_fingerprint(folder, files, image_size, channels)
    cache = Path(cache_dir or default_cache_dir()) / "prepared" / f"{_slug(folder)}-{key}"
    cached = _read_cache(cache)
    if cached is not None:
        return cached
    pixels, grays, skipped = [], [], []
    for p in progress(files) if progress else files:
        try:
            image, gray = decode_image(p, image_size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped.append(p.relative_to(folder).as_posix())
            continue
        pixels.append(image)
        grays.append(gray)
    if not pixels:
        raise DataError(f"none of the {len(files)} image files under {folder} could be decoded")
    stacked = np.stack(pixels).transpose(0, 3, 1, 2)  # (N, 3, S, S)
    if channels is None:
        channels = 1 if all(grays) else 3
    images = stacked[:, :1] if channels == 1 and all(grays) else stacked
    if channels == 1 and not all(grays):
        images = _luminance(stacked)
    result = ImageSet(images=np.ascontiguousarray(images), name=folder.name, skipped=skipped)
    _write_cache(cache, result)
    return result


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, the same formula as Pillow's convert('L'): (N, 3, H, W) -> (N, 1, H, W)."""
    weights = np.array([299, 587, 114], np.uint32).reshape(1, 3, 1, 1)
    return (((rgb * weights).sum(axis=1, keepdims=True) + 500) // 1000).astype(np.uint8)


def _slug(folder: Path) -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in folder.resolve().name)
    return name[:40] or "folder"


def _read_cache(cache: Path) -> ImageSet | None:
    try:
        meta = json.loads((cache / "meta.json").read_text())
        images = np.load(cache / "images.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != meta.get("count"):
        return None
    return ImageSet(
        images, meta["name"], skipped=meta["skipped"], cache_path=cache, from_cache=True
    )


def _write_cache(cache: Path, result: ImageSet) -> None:
    """Write images first, then meta.json: a cache without its meta is never read."""
    import io

    buf = io.BytesIO()
    np.save(buf, result.images, allow_pickle=False)
    atomic_write(cache / "images.npy", buf.getvalue())
    meta = {"name": result.name, "count": len(result.images), "skipped": result.skipped}
    atomic_write(cache / "meta.json", json.dumps(meta, indent=1).encode())
    result.cache_path = cache


# ---------------------------------------------------------------------------------------------
# choosing a source, and the batch order


def load_source(
    source: str,
    image_size: int,
    channels: int | None,
    cache_dir: Path | None = None,
    progress: Callable | None = None,
) -> ImageSet:
    """Resolve a --data value: "digits" (the default, bundled) or a folder path."""
    if source == "digits":
        return load_digits(image_size, channels or 1)
    return load_folder(Path(source).expanduser(), image_size, channels, cache_dir, progress)


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
