"""The only place that reads and writes checkpoint files (where they live in a run: rundir.py).

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
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from . import files
from .config import RunConfig
from .errors import CheckpointError, UsageError

CHECKPOINT_FORMAT = 1


def write_checkpoint(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Atomically write one checkpoint file. `meta` must be JSON-serialisable."""
    meta = {"format": CHECKPOINT_FORMAT, **meta}
    # ascontiguousarray turns 0-d arrays (num_batches_tracked) into shape (1,): keep the shape
    contiguous = {k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in arrays.items()}
    files.atomic_write(path, save(contiguous, metadata={"dcgan": json.dumps(meta)}))


def read_checkpoint(
    path: Path, validate: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a checkpoint file into (arrays, meta). A corrupt or foreign file is a CheckpointError,
    and so is metadata that `validate_meta` refuses (validate False: only the format is checked,
    for files that are not a run's checkpoints)."""
    path = Path(path)
    try:
        arrays = load_file(str(path))
        meta = json.loads(_read_metadata(path)["dcgan"])
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a dcgan checkpoint ({e})"
        ) from None
    if validate:
        check_sizes(arrays, validate_meta(meta, path), path)
    elif not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a dcgan checkpoint (format)")
    return arrays, meta


def check_sizes(
    arrays: dict[str, np.ndarray],
    config: RunConfig,
    path: Path,
    prefixes: tuple[str | None, str | None] = ("generator", "discriminator"),
) -> None:
    """A config that asks for more weights than the file holds is refused before any model is
    built: a hostile `g_features` must not become a terabyte allocation. `prefixes` name G's and
    D's tensors ("" for unprefixed names, None to skip one)."""
    from .limits import parameter_counts

    for prefix, need in zip(prefixes, parameter_counts(config.model)):
        if prefix is None:
            continue
        start = prefix + "." if prefix else ""
        have = sum(v.size for k, v in arrays.items() if k.startswith(start))
        if have < need:
            raise CheckpointError(
                f"checkpoint {path} does not match its config: its {prefix or 'generator'} "
                f"needs {need} weights, the file holds {have}"
            )


def validate_meta(meta: Any, path: Path) -> RunConfig:
    """Check a checkpoint's JSON metadata before anything builds on it: an object with the known
    format, a step count, and a config that `RunConfig.from_dict` accepts (types and ranges);
    the optional sections have the right JSON types. Returns the config; a bad file is one
    CheckpointError naming the file and the field."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has metadata that is not a JSON object")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {_show(meta.get('format'))}, "
            f"expected {CHECKPOINT_FORMAT}"
        )
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
        raise CheckpointError(
            f"checkpoint {path}: step must be an integer from 0 to {MAX_STEP}, got {_show(step)}"
        )
    for name, kinds in _META_SECTIONS.items():
        if name in meta and not isinstance(meta[name], kinds):
            raise CheckpointError(
                f"checkpoint {path}: {name} has the wrong type ({type(meta[name]).__name__})"
            )
    elapsed = meta.get("elapsed", 0.0)
    if isinstance(elapsed, bool) or not (isinstance(elapsed, (int, float)) and elapsed >= 0):
        raise CheckpointError(f"checkpoint {path}: elapsed must be a number >= 0")
    try:
        return RunConfig.from_dict(meta.get("config"))
    except UsageError as e:
        raise CheckpointError(f"checkpoint {path} holds a bad config: {e}") from None


MAX_STEP = 10**12
_META_SECTIONS = {
    "epoch": int,
    "world_size": int,
    "optimizers": dict,
    "rng": dict,
    "extra": dict,
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_meta(path: Path, validate: bool = True) -> dict[str, Any]:
    """A checkpoint's JSON metadata alone (the header: no tensors are read), checked by
    `validate_meta` (validate False: only the format)."""
    path = Path(path)
    try:
        meta = json.loads(_read_metadata(path)["dcgan"])
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a dcgan checkpoint ({e})"
        ) from None
    if validate:
        validate_meta(meta, path)
    elif not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a dcgan checkpoint of format {CHECKPOINT_FORMAT}"
        )
    return meta


def _read_metadata(path: Path) -> dict[str, str]:
    """The safetensors header's __metadata__ (the first 8 bytes give the header's length)."""
    with open(path, "rb") as f:
        return _parse_header(f, int.from_bytes(f.read(8), "little"))["__metadata__"]


def _parse_header(f, n: int) -> dict[str, Any]:
    if not 0 < n < 100_000_000:
        raise ValueError("bad header length")
    header = json.loads(f.read(n))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def check_checkpoint(path: Path) -> None:
    """Raise a CheckpointError unless `path` is a whole dcgan checkpoint: its header and metadata
    parse and the file is as long as the header says (a write cut short fails here), without
    reading the tensors."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = _parse_header(f, n)
            size = os.fstat(f.fileno()).st_size
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        meta = json.loads(header["__metadata__"]["dcgan"])
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a dcgan checkpoint ({e})"
        ) from None
    if size != 8 + n + max(ends, default=0):
        raise CheckpointError(f"checkpoint {path} is truncated ({size} bytes)")
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not a dcgan checkpoint of format {CHECKPOINT_FORMAT}"
        )


def subset(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under `prefix.`, with the prefix removed (e.g. a module's state dict)."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}
