"""The prepared uint8 cache: one directory per (source, preprocessing) holding images.npy,
labels.npy, meta.json and skipped.txt, written whole into a temporary directory and renamed into
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DcganError
from .limits import check_cache

PREPARE_VERSION = 2  # bump when decoding/resizing or the layout changes: old caches are not reused
SMALL_SET = 1000  # below this many images a GAN tends to memorise its data: warn


@dataclass
class ImageSet:
    """Prepared images: uint8 (N, C, H, W) (an ndarray or a read-only memmap), optional integer
    labels, and how they were made."""

    images: np.ndarray
    name: str
    labels: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)  # files that could not be decoded
    cache_path: Path | None = None
    from_cache: bool = False
    source: dict[str, Any] = field(default_factory=dict)  # what it was made from (meta.json)

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
    except (OSError, ValueError, KeyError):
        return None
    if (
        images.dtype != np.uint8
        or images.ndim != 4
        or list(images.shape) != meta.get("shape")
        or (labels is not None and len(labels) != len(images))
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
    )


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
    ) -> ImageSet:
        """Flush, write labels/meta/skipped report, and move the directory into place."""
        self.images.flush()
        shape = list(self.images.shape)
        self.images = None  # close the memmap before the rename
        if labels is not None:
            np.save(self.tmp / "labels.npy", np.asarray(labels, np.int64), allow_pickle=False)
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
