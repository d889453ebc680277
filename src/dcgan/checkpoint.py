"""The only place that reads and writes checkpoints and run directories' weight files.

A checkpoint is one safetensors file: every tensor (weights, optimizer moments, RNG states) as a
named array, and everything else as JSON in the file's metadata under the key "dcgan". One file
means one atomic rename: a crash mid-write can never leave a half checkpoint that looks valid.
The format is engine-neutral (NumPy arrays in, NumPy arrays out): the torch and NumPy engines
both use it. Tensor names: "generator.<state-dict key>", "discriminator.<key>",
"generator_ema.<key>", "opt_g.<param name>.exp_avg" / ".exp_avg_sq" (likewise opt_d), "rng.<name>".
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from .config import RunConfig
from .errors import CheckpointError

CHECKPOINT_FORMAT = 1
CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")


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
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


def write_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Atomically write one checkpoint file. `meta` must be JSON-serialisable."""
    meta = {"format": CHECKPOINT_FORMAT, **meta}
    # ascontiguousarray turns 0-d arrays (num_batches_tracked) into shape (1,): keep the shape
    contiguous = {k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in arrays.items()}
    atomic_write(path, save(contiguous, metadata={"dcgan": json.dumps(meta)}))


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint file into (arrays, meta). A corrupt or foreign file is a CheckpointError."""
    path = Path(path)
    try:
        arrays = load_file(str(path))
        meta = json.loads(_read_metadata(path)["dcgan"])
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a dcgan checkpoint ({e})"
        ) from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {meta.get('format')}, expected {CHECKPOINT_FORMAT}"
        )
    return arrays, meta


def read_meta(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON metadata alone (the header: no tensors are read)."""
    path = Path(path)
    try:
        meta = json.loads(_read_metadata(path)["dcgan"])
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a dcgan checkpoint ({e})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a dcgan checkpoint of format {CHECKPOINT_FORMAT}"
        )
    return meta


def _read_metadata(path: Path) -> dict[str, str]:
    """The safetensors header's __metadata__ (the first 8 bytes give the header's length)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 0 < n < 100_000_000:
            raise ValueError("bad header length")
        header = json.loads(f.read(n))
    return header["__metadata__"]


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:09d}.safetensors"


def save_step_checkpoint(
    run_dir: Path, step: int, arrays: dict[str, np.ndarray], meta: dict[str, Any], keep: int
) -> Path:
    """Write run_dir/checkpoints/step_N.safetensors, then prune all but the newest `keep`."""
    path = checkpoint_path(run_dir, step)
    write_checkpoint(path, arrays, meta)
    prune_checkpoints(run_dir, keep)
    return path


def best_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / "best.safetensors"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints (best.safetensors is never touched)."""
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def find_checkpoint(run: Path, which: str = "latest") -> Path:
    """Resolve a run directory (or a checkpoint file) to one checkpoint file.

    `which` is "latest" (the newest step checkpoint that reads back) or "best".
    """
    run = Path(run)
    if run.is_file():
        return run
    require_run_dir(run)
    if which == "best":
        if not best_path(run).is_file():
            raise CheckpointError(f"run {run} has no best checkpoint (train with --eval-every)")
        return best_path(run)
    if which != "latest":
        raise CheckpointError(f"unknown checkpoint {which!r}; use latest or best")
    candidates = list_checkpoints(run)
    if not candidates:
        raise CheckpointError(f"run {run} has no checkpoint yet")
    return candidates[-1]


def require_run_dir(run: Path) -> None:
    if not run.is_dir():
        raise CheckpointError(f"run directory {run} does not exist")
    if not (run / CONFIG_FILE).is_file():
        raise CheckpointError(f"{run} is not a dcgan run directory (no {CONFIG_FILE})")


def read_run_config(run: Path) -> RunConfig:
    run = Path(run)
    require_run_dir(run)
    try:
        return RunConfig.from_dict(json.loads((run / CONFIG_FILE).read_text()))
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{run / CONFIG_FILE} is unreadable ({e})") from None


def subset(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix.`, with the prefix removed (e.g. a module's state dict)."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}
