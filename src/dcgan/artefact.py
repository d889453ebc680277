"""The generator artefact `RUN/generator/{model.safetensors, config.json}` (diffusers'
`save_pretrained` shape), and the one reader both engines use to find the sampling generator of
a run directory, a checkpoint file or such a folder. Torch-free: the NumPy engine uses it.

model.safetensors holds the sampling generator only (the EMA generator when the run has one)
under its plain state-dict keys, so `DCGANGenerator(cfg).load_state_dict(load_file(...))` works
without dcgan's loaders; config.json holds the run config it needs and where it came from.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from . import checkpoint as ckpt
from . import rundir
from .config import RunConfig
from .errors import CheckpointError, UsageError
from .files import atomic_write, write_json

GENERATOR_DIR = "generator"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "dcgan-generator"
FORMAT_VERSION = 1


@dataclass
class GeneratorWeights:
    """What sampling needs, as host arrays: G's state dict (EMA if present), D's when the source
    has it (None for a generator folder), the run config, its step and the file it came from."""

    config: RunConfig
    generator: dict[str, np.ndarray]
    discriminator: dict[str, np.ndarray] | None
    step: int
    path: Path
    ema: bool


def is_generator_dir(path: Path) -> bool:
    path = Path(path)
    return (path / WEIGHTS_FILE).is_file() and (path / rundir.CONFIG_FILE).is_file()


def resolve(source: Path, which: str = "latest") -> Path:
    """The file to sample from: a step/best checkpoint, or a generator folder's model.safetensors.

    A run directory means its checkpoint (`which`: latest or best), or its generator/ folder
    when it has no checkpoints left (a run trimmed for shipping).
    """
    source = Path(source)
    if source.is_file() and source.name == WEIGHTS_FILE and is_generator_dir(source.parent):
        return source
    if source.is_dir() and is_generator_dir(source):
        return source / WEIGHTS_FILE
    if (
        source.is_dir()
        and which == "latest"
        and not rundir.list_checkpoints(source)
        and is_generator_dir(source / GENERATOR_DIR)
    ):
        return source / GENERATOR_DIR / WEIGHTS_FILE
    return rundir.find_checkpoint(source, which)


def load(source: Path, which: str = "latest", discriminator: bool = True) -> GeneratorWeights:
    """Read the sampling generator (and D, if wanted and present) of a run directory, checkpoint
    file or generator folder. Non-finite weights are a CheckpointError: a diverged run would
    otherwise write black or grey PNGs without a word."""
    path = resolve(source, which)
    if path.name == WEIGHTS_FILE and is_generator_dir(path.parent):
        weights = _read_generator_dir(path.parent)
    else:
        arrays, meta = ckpt.read_checkpoint(path)
        ema = any(k.startswith("generator_ema.") for k in arrays)
        d = ckpt.subset(arrays, "discriminator") if discriminator else None
        weights = GeneratorWeights(
            config=RunConfig.from_dict(meta["config"]),
            generator=ckpt.subset(arrays, "generator_ema" if ema else "generator"),
            discriminator=d,
            step=int(meta["step"]),
            path=path,
            ema=ema,
        )
    _check_finite(weights)
    return weights


def _check_finite(w: GeneratorWeights) -> None:
    parts = {"generator_ema" if w.ema else "generator": w.generator}
    if w.discriminator is not None:
        parts["discriminator"] = w.discriminator
    for prefix, arrays in parts.items():
        bad = [k for k, v in arrays.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:
            raise CheckpointError(
                f"{w.path} has non-finite weights in {prefix} ({', '.join(bad[:3])}"
                f"{', ...' if len(bad) > 3 else ''}): the run diverged at or before step "
                f"{w.step}; sample from an earlier checkpoint"
            )


def _read_generator_dir(folder: Path) -> GeneratorWeights:
    path = folder / WEIGHTS_FILE
    try:
        info = json.loads((folder / rundir.CONFIG_FILE).read_text())
        if info.get("format") != FORMAT:
            raise ValueError(f"format is {info.get('format')!r}, not {FORMAT!r}")
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {info.get('format_version')} is not {FORMAT_VERSION}")
        config = RunConfig.from_dict(info["config"])
        arrays = load_file(str(path))
        step, ema = int(info["step"]), bool(info["ema"])
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, UsageError) as e:
        raise CheckpointError(
            f"generator folder {folder} is corrupt or not a dcgan generator ({e})"
        ) from None
    return GeneratorWeights(config, arrays, None, step, path, ema)


def write_generator(source: Path, out_dir: Path | None = None, which: str = "latest") -> Path:
    """Write the generator artefact of a run (or checkpoint file) and return its folder.

    `out_dir` defaults to RUN/generator. The folder is built beside its destination and swapped
    in, so a crash leaves the old folder or the new one, never a mix. Copies the sampling
    generator's tensors (EMA when present) as they are in the checkpoint: the training loop makes
    the EMA generator's BatchNorm statistics match its weights before it checkpoints.
    """
    weights = load(source, which, discriminator=False)
    if out_dir is None:
        out_dir = run_dir_of(weights.path) / GENERATOR_DIR
    out_dir = Path(out_dir)
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": weights.step,
        "ema": weights.ema,
        "source": weights.path.name,
        "latent_dim": weights.config.model.latent_dim,
        "image_size": weights.config.model.image_size,
        "channels": weights.config.model.channels,
        "output_range": [-1, 1],
        "config": weights.config.to_dict(),
    }
    contiguous = {k: np.ascontiguousarray(v).reshape(v.shape) for k, v in weights.generator.items()}
    payload = save(contiguous, metadata={"format": FORMAT})

    def fill(tmp: Path) -> None:
        atomic_write(tmp / WEIGHTS_FILE, payload)
        write_json(tmp / rundir.CONFIG_FILE, info)

    replace_dir(out_dir, fill)
    return out_dir


def run_dir_of(path: Path) -> Path:
    """The run directory a checkpoint or generator file belongs to (RUN/checkpoints/x -> RUN);
    a loose file: the folder that holds it (rundir.output_dir)."""
    return rundir.output_dir(path)


def replace_dir(out_dir: Path, fill: Any) -> None:
    """Build a folder with `fill(tmp)` beside `out_dir`, then put it in out_dir's place: the old
    folder (if any) is removed only once the new one is complete."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would make the result private
    old = None
    try:
        fill(tmp)
        if out_dir.exists():
            old = out_dir.with_name(f"{tmp.name[:-4]}.old")
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
