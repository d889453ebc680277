"""How dcgan writes its files: atomically (a crash never leaves half of one), JSON lines strict on
write and tolerant on read, and the slug that turns a user's name into a file name."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError


def atomic_write(path: Path, data: bytes) -> None:
    """Write bytes so that `path` holds either its old content or all of `data`, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    """`obj` as indented JSON plus a newline, written atomically."""
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


def slug(name: str, fallback: str = "", limit: int | None = 40) -> str:
    """`name` safe in a file name or an HTML id: letters, digits, - and _ kept, any other
    character replaced by _, cut to `limit` characters (None: no cut); `fallback` if empty."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return safe[:limit] or fallback


# ---------------------------------------------------------------------------------------------
# JSON lines: strict on write, tolerant on read


def strict_json(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, inf) as None, so json.dumps gives strict JSON
    (a bare NaN is not JSON: `jq` and browsers refuse it)."""
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one strict-JSON line, flushed at once so a crash loses at most that line."""
    line = json.dumps(strict_json(record), allow_nan=False) + "\n"
    with open(path, "a") as f:
        f.write(line)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a .jsonl file, oldest first ([] when it does not exist). A line that
    does not parse (the half-written last line of a killed run, a hand edit) is skipped."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise CheckpointError(f"{path} is unreadable ({e.strerror or e})") from None
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def repair_jsonl(path: Path) -> bool:
    """Cut a torn last line (no newline at the end: the write was killed), so the next append
    starts on a line of its own. Returns whether anything was cut."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    if not data or data.endswith(b"\n"):
        return False
    keep = data[: data.rfind(b"\n") + 1]  # rfind -1 (no newline at all) keeps nothing
    atomic_write(path, keep)
    return True
