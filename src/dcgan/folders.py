"""A folder of pictures -> the prepared uint8 cache: safe listing (symlink loops, odd names),
tolerant decoding (EXIF, palette, 16-bit, CMYK, animations, broken files), decoding on all
cores in chunks, with results identical to one process, and labels from class subfolders.
"""

from __future__ import annotations

import collections
import hashlib
import multiprocessing
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
from PIL import Image, ImageOps

from .classes import class_folders
from .errors import DataError
from .files import slug
from .perf import available_cpus
from .prepared import (
    PREPARE_VERSION,
    ImageSet,
    PreparedWriter,
    commit_decoded,
    interruptible,
    prepared_dir,
    read_prepared,
    signals_held,
)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
PARALLEL_MIN_FILES = 2000  # below this, starting worker processes costs more than it saves
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}


class ImageFile(NamedTuple):
    """One file found under a folder: its relative POSIX path (the sort key and its name in
    reports), the path to open, and the size and mtime that go into the cache fingerprint."""

    rel: str
    path: str
    size: int
    mtime_ns: int


def scan_folder(folder: Path) -> tuple[list[ImageFile], list[tuple[str, str]]]:
    """Image files under `folder`, recursively and sorted by relative path, plus the entries that
    cannot be read at all (dangling or looping symlinks) with a reason. One stat per file.

    Symlinked folders are followed once: a folder already visited (by device and inode) is not
    entered again, so a link loop cannot recurse forever.
    """
    top = os.fspath(folder)
    found, problems, seen = [], [], set()
    for root, dirs, files in os.walk(top, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []  # a symlink back to a folder we have been in
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        prefix = os.path.relpath(root, top).replace(os.sep, "/") + "/"
        prefix = "" if prefix == "./" else prefix
        for name in files:
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            path = os.path.join(root, name)
            try:
                st = os.stat(path)  # follows links: ELOOP or ENOENT for broken ones
            except OSError as e:
                problems.append((prefix + name, f"unreadable: {e.strerror or e}"))
                continue
            if stat.S_ISREG(st.st_mode):
                found.append(ImageFile(prefix + name, path, st.st_size, st.st_mtime_ns))
    found.sort()
    return found, sorted(problems)


def list_image_files(folder: Path) -> list[Path]:
    """Image files under `folder` (see `scan_folder`)."""
    return [Path(f.path) for f in scan_folder(Path(folder))[0]]


def folder_fingerprint(files: list[ImageFile], settings: str) -> str:
    """A hash of every file's relative path, size and mtime plus the preprocessing settings."""
    h = hashlib.sha256(f"v{PREPARE_VERSION}|{settings}".encode())
    for f in files:
        name = f.rel.encode("utf-8", "surrogateescape")
        h.update(b"|" + name + f"|{f.size}|{f.mtime_ns}".encode())
    return h.hexdigest()[:16]


def decode_image(
    path: str | Path | IO[bytes], image_size: int, crop: int | None = None
) -> tuple[np.ndarray, bool]:
    """Decode one file (a path or an open binary file) to uint8 RGB (H, W, 3), cropped and resized to image_size square.

    crop None takes the largest centred square; an int takes a centred crop x crop box first (the
    CelebA convention). EXIF orientation is applied; the first frame of an animation is used;
    transparency is composited onto white; 16-bit and float grayscale are scaled, not clipped.
    Returns (pixels, is_gray). Raises on files that cannot be decoded.
    """
    with Image.open(path) as img:
        img.seek(0)
        img.load()
        try:
            if img.getexif().get(0x0112, 1) != 1:  # only rotated pictures pay for the copy
                img = ImageOps.exif_transpose(img)
        except Exception:  # a broken EXIF block should not cost the picture
            pass
        gray = img.mode in _GRAY_MODES
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            wide = np.asarray(img, dtype=np.float64)
            peak = _peak(img.mode, wide)
            img = Image.fromarray(np.clip(wide * (255.0 / peak), 0, 255).round().astype(np.uint8))
        if img.mode == "P":
            img = img.convert("RGBA")
            rgba = np.asarray(img)
            gray = bool(
                (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 1] == rgba[..., 2]).all()
            )
        if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            background = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, img.convert("RGBA"))
        img = _center_crop(img if img.mode == "RGB" else img.convert("RGB"), crop)
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return np.asarray(img, dtype=np.uint8), gray


def _peak(mode: str, wide: np.ndarray) -> float:
    if mode.startswith("I;16"):
        return 65535.0
    top = float(wide.max()) if wide.size else 0.0
    if mode == "F" and top <= 1.0:
        return 1.0  # float images in [0, 1]
    return 65535.0 if top > 255 else 255.0


def _center_crop(img: Image.Image, crop: int | None) -> Image.Image:
    w, h = img.size
    side = min(w, h) if crop is None else min(crop, w, h)
    if side == w == h:
        return img
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def skip_reason(e: BaseException) -> str:
    if isinstance(e, Image.DecompressionBombError):
        return (
            f"larger than Pillow's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS} pixels); "
            "raise PIL.Image.MAX_IMAGE_PIXELS only if you trust the file"
        )
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _decode_chunk(task: tuple[str, int, list[str], int, int | None]) -> list[tuple]:
    """Decode a chunk of files straight into the (N, 3, S, S) memmap at `target` at their own
    indices, so no pixels travel between processes. Returns (index, is_gray) per decoded file,
    (index, None, reason) per skipped one."""
    target, first, paths, image_size, crop = task
    out_array = _open_target(target)
    out: list[tuple] = []
    for i, p in enumerate(paths, first):
        try:
            pixels, gray = decode_image(p, image_size, crop)
        # any failure of a third-party decoder on a hostile file means "skip this file", never
        # "stop preparing": Pillow raises OSError, ValueError, SyntaxError, struct.error, ...
        except Exception as e:
            out.append((i, None, skip_reason(e)))
            continue
        out_array[i] = pixels.transpose(2, 0, 1)
        out.append((i, gray))
    return out


_TARGET: dict[str, np.ndarray] = {}  # per process: the output memmap, opened once


def _open_target(path: str) -> np.ndarray:
    if path not in _TARGET:
        _TARGET.clear()
        _TARGET[path] = np.load(path, mmap_mode="r+")
    return _TARGET[path]


class Sized:
    """An iterator with a length, so a progress bar (tqdm) knows the total."""

    def __init__(self, it: Iterator, n: int):
        self.it, self.n = it, n

    def __iter__(self):
        return self.it

    def __len__(self) -> int:
        return self.n


def decode_all(
    files: list[ImageFile], target: Path, image_size: int, crop: int | None, workers: int
) -> Iterator[tuple]:
    """Decode every file into the (N, 3, S, S) uint8 .npy memmap at `target`, row i for file i,
    on `workers` processes in all (1 = this process alone). Yields one result per file, as
    `_decode_chunk` gives them, in completion order; the pixels do not depend on `workers`.

    This process decodes too, from the far end of the chunk list, while workers - 1 helper
    processes start up and take chunks from the front: the start-up is not dead time, and no
    core idles while this process waits."""
    names, target_name = [f.path for f in files], str(target)
    size = 1 if workers <= 1 else max(8, min(128, len(files) // (workers * 16) or 1))
    chunks = collections.deque(
        (target_name, i, names[i : i + size], image_size, crop) for i in range(0, len(files), size)
    )
    pool = None
    if workers > 1:
        pool = ProcessPoolExecutor(
            workers - 1,
            mp_context=_pool_context(),
            initializer=_worker_start,
            initargs=(os.getpid(),),
        )
    try:
        in_flight: set = set()
        while chunks or in_flight:
            with signals_held():  # submit starts workers: each is recorded before a signal
                while pool is not None and chunks and len(in_flight) < 2 * (workers - 1):
                    in_flight.add(pool.submit(_decode_chunk, chunks.popleft()))
            if chunks:
                yield from _decode_chunk(chunks.pop())
                done = {f for f in in_flight if f.done()}
            else:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()
            in_flight -= done
    except BaseException as e:  # Ctrl-C, SIGTERM, a dead worker, an error downstream
        if pool is not None:
            _stop_workers(pool)  # now, not after their chunks
        if isinstance(e, BrokenProcessPool):  # from a result, or a submit after the death
            raise DataError(
                "a decoding process died (out of memory, or a decoder crashed on a file); "
                "prepare in one process with DCGAN_WORKERS=1 to find the file"
            ) from None
        raise
    finally:
        _TARGET.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _worker_start(parent: int) -> None:
    """In a worker: ignore Ctrl-C, which reaches the whole process group but only the parent
    handles (it stops the workers), so a worker prints no KeyboardInterrupt traceback of its
    own (a forkserver we started ignores it from each worker's birth, `_forkserver_preload`;
    this covers spawn and a server started by others); and end when the parent process ends.
    A signal can stop the parent between a worker's start and the executor's note of it, and
    `_stop_workers` cannot terminate a worker it does not know: that worker would wait for work
    forever, holding the user's terminal or pipe open (seen under SIGTERM, about one run in
    eight)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: int, every: float = 0.5) -> None:
    while _alive(parent):
        time.sleep(every)
    os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs. On Linux a zombie (ended, not yet reaped) counts as
    ended: a caller that reaps dcgan only after its pipes close would otherwise wait for a worker
    that waits for dcgan to vanish."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().rpartition(b")")[2].split()[0] != b"Z"  # the state field
        except OSError:
            return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists, not ours to signal
        pass
    return True


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes instead of waiting for their chunks to finish."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.terminate()
        except (OSError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.join(timeout=5)


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver: workers start from a clean process, not a fork of one holding torch's thread
    pools (fork with threads running can deadlock). The server imports this module once, so
    each worker starts in milliseconds instead of importing numpy and Pillow again, and
    `_forkserver_preload` first, so each worker ignores Ctrl-C from birth."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["dcgan._forkserver_preload", __name__])
    return context


def default_workers(n_files: int) -> int:
    """Processes to decode with: $DCGAN_WORKERS if set, else every CPU this process may use (its
    affinity and CPU quota) for 2,000+ files."""
    given = os.environ.get("DCGAN_WORKERS", "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise DataError(f"DCGAN_WORKERS must be a positive integer, got {given!r}")
        return int(given)
    if n_files < PARALLEL_MIN_FILES:
        return 1
    return available_cpus()


def load_folder(
    folder: Path,
    image_size: int,
    channels: int | None = None,
    cache_dir: Path | None = None,
    progress: Callable | None = None,
    *,
    workers: int | None = None,
    crop: int | None = None,
    only: set[str] | None = None,
    name: str | None = None,
) -> ImageSet:
    """Decode every image under `folder` once into uint8 (N, C, S, S), cached by fingerprint.

    channels None means 1 when every image is grayscale, else 3. Undecodable files are skipped,
    listed in `ImageSet.skipped` and in skipped.txt in the cache. `progress`, if given, wraps the
    per-file result iterator (e.g. tqdm). `workers` None uses every core for large folders;
    `only` keeps the files whose relative path is in it (a split list); `name` names the set.
    Labels and class names follow `classes.class_folders` over the decoded files.
    """
    folder = Path(folder)
    files, problems = _image_files(folder, only)
    settings = f"{image_size}|{channels}|{crop}"
    cache_name = slug(name or folder.resolve().name, "folder")
    cache = prepared_dir(cache_dir, cache_name, folder_fingerprint(files, settings))
    cached = read_prepared(cache)
    if cached is not None:
        return cached
    workers = default_workers(len(files)) if workers is None else workers
    shape = (3, image_size, image_size)
    with interruptible(str(folder)), PreparedWriter(cache, len(files), shape) as decoded:
        results = decode_all(files, decoded.images_path, image_size, crop, workers)
        if progress is not None:
            results = progress(Sized(results, len(files)))
        gray, skipped = collect_decoded(results, files, problems, folder)
        source = {"kind": "folder", "path": str(folder.resolve()), "files": len(files)}
        source |= {"image_size": image_size, "channels": channels, "crop": crop}
        labelling = class_folders([files[i].rel for i in sorted(gray)], "folder")
        return commit_decoded(decoded, gray, name or folder.name, source, skipped, labelling)


def _image_files(
    folder: Path, only: set[str] | None
) -> tuple[list[ImageFile], list[tuple[str, str]]]:
    """The image files to decode (those in `only`, when given) and the entries that could not be
    listed; a DataError when the folder is missing or holds no image."""
    if not folder.exists():
        raise DataError(f"data folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"--data {folder} is not a folder of images")
    files, problems = scan_folder(folder)
    if only is not None:
        files = [f for f in files if f.rel in only]
    if not files:
        exts = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        subs = sorted(p.name for p in folder.iterdir() if p.is_dir())
        shown = ", ".join(subs[:3]) + (", ..." if len(subs) > 3 else "")
        inside = f" (nor in its {len(subs)} subfolders: {shown})" if subs else ""
        raise DataError(f"no images ({exts}) found under {folder}{inside}")
    return files, problems


def collect_decoded(results, files: list[ImageFile], problems: list[tuple[str, str]], folder: Path):
    """Drain the decoders' (index, is_gray, *reason) results into ({index: is_gray} of the
    decoded files, [(rel, reason)] of the skipped ones); a DataError when none decoded."""
    gray: dict[int, bool] = {}
    skipped = list(problems)
    for index, is_gray, *reason in results:
        if is_gray is None:
            skipped.append((files[index].rel, reason[0]))
        else:
            gray[index] = is_gray
    if not gray:
        reason = skipped[-1][1] if skipped else "no files"
        raise DataError(
            f"none of the {len(files)} image files under {folder} could be decoded (e.g. {reason})"
        )
    return gray, skipped
