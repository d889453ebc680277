"""The prepared uint8 cache: one directory per (source, preprocessing) holding images.npy,
labels.npy, meta.json (with the class names) and skipped.txt, written whole into a temporary directory and renamed into
place, and read back memory-mapped so a 200k-image set never has to fit in RAM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .classes import Labelling
from .errors import DataError, DcganError
from .limits import check_cache

# bump when decoding/resizing, labelling or the layout changes: old caches are not reused
# (3: class names and the unlabelled reason in meta.json; folders and zips labelled by subfolder)
PREPARE_VERSION = 3
SMALL_SET = 1000  # below this many images a GAN tends to memorise its data: warn


@dataclass
class ImageSet:
    """Prepared images: uint8 (N, C, H, W) (an ndarray or a read-only memmap), optional integer
    labels, and how they were made.

    `class_names` is set only when every label is a class index, 0 <= label < len(class_names);
    otherwise `unlabelled_reason` says what was found instead (for `require_labels`'s message),
    e.g. "a folder with 812 loose images and no class subfolders". (STL-10's unlabelled splits
    keep their -1 labels, as torchvision gives them, without class names.)"""

    images: np.ndarray
    name: str
    labels: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)  # files that could not be decoded
    cache_path: Path | None = None
    from_cache: bool = False
    source: dict[str, Any] = field(default_factory=dict)  # what it was made from (meta.json)
    class_names: tuple[str, ...] | None = None  # label k is class_names[k]
    unlabelled_reason: str | None = None

    @property
    def num_classes(self) -> int | None:
        return None if self.class_names is None else len(self.class_names)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def warnings(self) -> list[str]:
        """Things a user should hear about before training on this set."""
        if len(self) < SMALL_SET:
            return [
                f"only {len(self)} images: GANs memorise small sets, expect near-copies of them"
            ]
        return []


def default_cache_dir() -> Path:
    """$DCGAN_HOME if set, else ~/.cache/dcgan."""
    return Path(os.environ.get("DCGAN_HOME") or Path.home() / ".cache" / "dcgan")


def prepared_dir(cache_dir: Path | None, slug: str, key: str) -> Path:
    return Path(cache_dir or default_cache_dir()) / "prepared" / f"{slug}-{key}"


def read_prepared(cache: Path, mmap: bool = True) -> ImageSet | None:
    """The cached set at `cache`, memory-mapped, or None if it is absent or inconsistent."""
    try:
        meta = json.loads((cache / "meta.json").read_text())
        images = np.load(cache / "images.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        labels = None
        if meta.get("labels"):
            labels = np.load(cache / "labels.npy", allow_pickle=False)
        skipped = _read_skipped(cache) if meta.get("skipped") else []
        names = meta.get("class_names")
        names = None if names is None else tuple(str(n) for n in names)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or list(images.shape) != meta.get("shape")
        or (labels is not None and len(labels) != len(images))
        or (names is not None and not _labels_fit(labels, len(names)))
    ):
        return None
    return ImageSet(
        images,
        meta["name"],
        labels=labels,
        skipped=skipped,
        cache_path=cache,
        from_cache=True,
        source=meta.get("source", {}),
        class_names=names,
        unlabelled_reason=meta.get("unlabelled"),
    )


def _labels_fit(labels: np.ndarray | None, num_classes: int) -> bool:
    """Whether every label is a class index below `num_classes`."""
    if labels is None or labels.dtype.kind not in "iu" or num_classes < 1:
        return False
    return len(labels) == 0 or (int(labels.min()) >= 0 and int(labels.max()) < num_classes)


def _read_skipped(cache: Path) -> list[str]:
    lines = (cache / "skipped.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[0] for line in lines if line and not line.startswith("#")]


class PreparedWriter:
    """Fills images.npy row by row in a temporary directory; `commit` renames it into place.

    Use as a context manager: on an exception nothing is left behind, so a half-written cache can
    never be mistaken for a finished one.
    """

    def __init__(self, cache: Path, count: int, shape: tuple[int, int, int]):
        self.cache = Path(cache)
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        check_cache(self.cache.parent, count, shape)  # before a byte is written
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.cache.name}.", dir=self.cache.parent))
        self.images_path = self.tmp / "images.npy"  # other processes may fill it too
        self.images = np.lib.format.open_memmap(
            self.images_path, mode="w+", dtype=np.uint8, shape=(count, *shape)
        )

    def __enter__(self) -> PreparedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.tmp.exists():
            self.images = None
            shutil.rmtree(self.tmp, ignore_errors=True)

    def commit(
        self,
        name: str,
        source: dict[str, Any],
        labels: np.ndarray | None = None,
        skipped: list[tuple[str, str]] = (),
        class_names: Sequence[str] | None = None,
        unlabelled: str | None = None,
    ) -> ImageSet:
        """Flush, write labels/meta/skipped report, and move the directory into place.
        `class_names` (with labels that index them) or `unlabelled` (why there are none)."""
        self.images.flush()
        shape = list(self.images.shape)
        self.images = None  # close the memmap before the rename
        if labels is not None:
            labels = np.asarray(labels, np.int64)
            np.save(self.tmp / "labels.npy", labels, allow_pickle=False)
        if class_names is not None and not _labels_fit(labels, len(class_names)):
            raise DataError(f"{name}: labels outside its {len(class_names)} classes")
        if skipped:
            write_skipped_report(self.tmp / "skipped.txt", skipped)
        meta = {
            "format": PREPARE_VERSION,
            "name": name,
            "count": shape[0],
            "shape": shape,
            "labels": labels is not None,
            "skipped": len(skipped),
            "source": source,
            "class_names": None if class_names is None else list(class_names),
            "unlabelled": unlabelled,
        }
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(self.tmp, self.cache)
        except OSError:
            # another process prepared the same set first (or an old cache dir is in the way)
            if read_prepared(self.cache) is None:
                shutil.rmtree(self.cache, ignore_errors=True)
                os.replace(self.tmp, self.cache)
        shutil.rmtree(self.tmp, ignore_errors=True)
        result = read_prepared(self.cache)
        if result is None:
            raise OSError(f"the prepared cache {self.cache} could not be read back")
        result.from_cache = False
        return result


class PreparationInterrupted(DcganError):
    """SIGINT or SIGTERM while a cache was being prepared (the partial cache is removed)."""


class _Signal(KeyboardInterrupt):
    """Raised by the handler: a BaseException, so no `except Exception` around a decoder can
    mistake it for a broken file."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_held: list[int] = []  # [first signal seen, or 0] while signals_held() runs


@contextlib.contextmanager
def signals_held():
    """Inside `interruptible`, hold a signal until the end of the block instead of raising it
    inside: for code that must not stop half-way, such as a process pool between starting a
    worker and recording it (a worker it does not know of, it cannot stop).

    A held signal is raised at the end even when the block itself raised: the signal is the
    cause the user must see, and the block's error often its consequence (a Ctrl-C reaches the
    whole process group, so a worker it stops breaks the pool the block submits to)."""
    if _held:  # nested: the outer block raises
        yield
        return
    _held.append(0)
    try:
        yield
    finally:
        signum = _held.pop()
        if signum:
            os.kill(os.getpid(), signum)  # handled again, now outside the block


@contextlib.contextmanager
def interruptible(what: str):
    """While preparing `what`: SIGINT and SIGTERM raise in this (main) thread, so the `with
    PreparedWriter` and a decoder's cleanup run (workers stopped, partial cache removed), then
    become one PreparationInterrupted line; a second signal during the cleanup is ignored.
    Outside the main thread nothing changes (signals can only be handled there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # a signal the process was told to ignore (nohup, a background job's SIGINT) stays ignored
    signals = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) != signal.SIG_IGN]

    def handle(signum, frame):
        if _held:  # inside signals_held(): raised at its end
            _held[0] = _held[0] or signum
            return
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        raise _Signal(signum)

    previous = {s: signal.signal(s, handle) for s in signals}
    try:
        yield
    except _Signal as e:
        error = PreparationInterrupted(
            f"{signal.Signals(e.signum).name} while preparing {what}: stopped (workers "
            "included) and removed the partial cache; run the command again to prepare it"
        )
        error.exit_code = 128 + e.signum
        raise error from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def write_skipped_report(path: Path, skipped: list[tuple[str, str]]) -> None:
    """One `relative/path<TAB>reason` line per skipped file (names kept even if not UTF-8)."""
    lines = ["# files skipped while preparing this set: path<TAB>reason"]
    lines += [f"{p}\t{reason}" for p, reason in skipped]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="backslashreplace")


def cache_bytes(cache: Path) -> int:
    return sum(p.stat().st_size for p in Path(cache).iterdir() if p.is_file())


def list_prepared(cache_dir: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every finished prepared set under the cache directory, with its meta.json."""
    root = Path(cache_dir or default_cache_dir()) / "prepared"
    found = []
    for d in sorted(root.glob("*")) if root.is_dir() else []:
        try:
            found.append((d, json.loads((d / "meta.json").read_text())))
        except (OSError, ValueError):
            continue
    return found


def commit_decoded(
    decoded: PreparedWriter,
    gray: dict[int, bool],
    name: str,
    source: dict,
    skipped: list[tuple[str, str]],
    labelling: Labelling,
) -> ImageSet:
    """Commit the rows `gray` ({row: is_gray}, the decoded ones) of `decoded`, a (N, 3, S, S)
    writer, with `labelling` of those rows in order. source["channels"] None means 1 when every
    kept image is gray, else 3 (it is set to the number chosen)."""
    all_gray = all(gray.values())
    c = source["channels"] = source["channels"] or (1 if all_gray else 3)
    commit = dict(name=name, source=source, skipped=sorted(skipped), labels=labelling.labels)
    commit |= dict(class_names=labelling.class_names, unlabelled=labelling.reason)
    if c == 3 and len(gray) == len(decoded.images):  # the usual case: already the final array
        return decoded.commit(**commit)
    # skipped files leave holes, and a gray set keeps one channel: one compacting pass
    kept, size = sorted(gray), decoded.images.shape[-1]
    with PreparedWriter(decoded.cache, len(kept), (c, size, size)) as out:
        for start in range(0, len(kept), 1024):
            block = decoded.images[kept[start : start + 1024]]
            if c == 1:
                block = block[:, :1] if all_gray else luminance(block)
            out.images[start : start + len(block)] = block
        return out.commit(**commit)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, the same formula as Pillow's convert('L'): (N, 3, H, W) -> (N, 1, H, W)."""
    weights = np.array([299, 587, 114], np.uint32).reshape(1, 3, 1, 1)
    return (((rgb * weights).sum(axis=1, keepdims=True) + 500) // 1000).astype(np.uint8)
