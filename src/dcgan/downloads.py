"""Fetching the well-known dataset files: verified by size and md5 (the checksums torchvision
lists), streamed to a temporary file and renamed into place only when correct, so a cut or corrupt
download is never used and never left behind looking valid.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError

CHUNK = 1 << 20
TIMEOUT_S = 30
MIRROR_ENV = "DCGAN_DATASETS_MIRROR"  # a base URL tried first: {mirror}/{dataset}/{file}
OFFLINE_ENV = "DCGAN_OFFLINE"  # set to 1: never touch the network, only use what is on disk


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str
    urls: tuple[str, ...] = ()  # empty: cannot be downloaded by us (e.g. Google Drive)
    size: int | None = None


def md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, remote: RemoteFile) -> bool:
    """True when `path` has the expected size (if known) and md5."""
    try:
        if remote.size is not None and path.stat().st_size != remote.size:
            return False
        return md5_of(path) == remote.md5
    except OSError:
        return False


def ensure_files(
    dataset: str,
    files: list[RemoteFile],
    folder: Path,
    on_bytes: Callable[[str, int, int | None], None] | None = None,
) -> list[Path]:
    """Paths of `files` in `folder`, each verified; missing ones are downloaded.

    A file on disk that fails its checksum is renamed to `<name>.corrupt` and fetched again. When
    anything is still missing, one DataError line names the files, their URLs and the folder.
    `on_bytes(name, done, total)` reports download progress.
    """
    folder = Path(folder)
    missing, notes = [], []
    for remote in files:
        path = folder / remote.name
        if path.exists() and not verify(path, remote):
            os.replace(path, path.with_name(path.name + ".corrupt"))
            notes.append(
                f"{remote.name} on disk failed its md5 check (kept as {remote.name}.corrupt)"
            )
        if not path.exists():
            missing.append(remote)
    if missing and os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        notes.append(f"{OFFLINE_ENV} is set")
    elif missing:
        folder.mkdir(parents=True, exist_ok=True)
        for remote in list(missing):
            error = download(dataset, remote, folder, on_bytes)
            if error is None:
                missing.remove(remote)
            else:
                notes.append(error)
    if missing:
        wanted = "; ".join(f"{r.name} from {_urls_text(dataset, r)}" for r in missing)
        why = f" ({'; '.join(notes)})" if notes else ""
        raise DataError(
            f"{dataset}: missing {', '.join(r.name for r in missing)}{why}. "
            f"Get {wanted} and put them in {folder}"
        )
    return [folder / r.name for r in files]


def _urls_text(dataset: str, remote: RemoteFile) -> str:
    urls = candidate_urls(dataset, remote)
    return " or ".join(urls) if urls else "the dataset's website"


def candidate_urls(dataset: str, remote: RemoteFile) -> list[str]:
    mirror = os.environ.get(MIRROR_ENV, "").rstrip("/")
    return ([f"{mirror}/{dataset}/{remote.name}"] if mirror else []) + list(remote.urls)


def download(
    dataset: str,
    remote: RemoteFile,
    folder: Path,
    on_bytes: Callable[[str, int, int | None], None] | None = None,
) -> str | None:
    """Try each URL in turn; None on success (the verified file is in place), else why not."""
    errors = []
    for url in candidate_urls(dataset, remote):
        try:
            _fetch(url, remote, folder / remote.name, on_bytes)
            return None
        except (OSError, ValueError, http.client.HTTPException) as e:
            errors.append(f"{url}: {_reason(e)}")
    return "; ".join(errors) or f"{remote.name} has no download URL"


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    if isinstance(e, http.client.IncompleteRead):
        return f"truncated: connection closed after {len(e.partial)} bytes"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _fetch(url: str, remote: RemoteFile, dest: Path, on_bytes) -> None:
    """Stream `url` into a temporary file beside `dest`, check length and md5, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        h, done = hashlib.md5(usedforsecurity=False), 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else remote.size
            while chunk := r.read(CHUNK):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if on_bytes is not None:
                    on_bytes(remote.name, done, total)
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise ValueError(f"truncated: got {done} of {total} bytes")
        if remote.size is not None and done != remote.size:
            raise ValueError(f"wrong size: {done} bytes, expected {remote.size}")
        if h.hexdigest() != remote.md5:
            raise ValueError(f"md5 mismatch: got {h.hexdigest()}, expected {remote.md5}")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
