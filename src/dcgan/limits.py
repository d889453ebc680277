"""Limits that follow from memory and disk: estimates of what a prepared cache and a training step
need, checked before anything is allocated, so a bad size is one line with the numbers instead
of an allocator traceback, the OOM killer or a full disk. Torch-free (both engines use it).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from .architecture import discriminator_plan, generator_plan, hidden_maps, parameter_count
from .config import ModelConfig, RunConfig
from .errors import DataError, UsageError

FLOAT_BYTES = 4
WARN_SHARE = 0.5  # a step that needs more than this share of the free memory gets a warning


def gib(n: float) -> str:
    """Bytes as a short human number: '1.3 TB', '840 MB'."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


# ---------------------------------------------------------------------------------------------
# what is free


def available_memory() -> int | None:
    """Bytes this process can still allocate: the smaller of the system's MemAvailable and the
    cgroup (container) limit's headroom; None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError):
            pass
    return min(found) if found else None


def free_disk(path: Path) -> int | None:
    """Free bytes on the file system that holds `path` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# the prepared cache


def cache_bytes(count: int, shape: tuple[int, ...]) -> int:
    """Bytes of a prepared uint8 cache of `count` images of `shape` (C, H, W)."""
    return count * math.prod(shape)


def check_cache(folder: Path, count: int, shape: tuple[int, ...]) -> None:
    """Refuse (DataError) a prepared cache that would not fit on the disk under `folder`."""
    need, free = cache_bytes(count, shape), free_disk(folder)
    if free is not None and need > free:
        c, h, w = shape
        raise DataError(
            f"the prepared cache of {count} images at {c}x{h}x{w} needs {gib(need)} but only "
            f"{gib(free)} is free under {folder}; use a smaller --image-size or another "
            "--cache-dir"
        )


# ---------------------------------------------------------------------------------------------
# a training step


def parameter_counts(model: ModelConfig) -> tuple[int, int]:
    """(generator, discriminator) trainable parameter counts, as `dcgan.architecture` plans them
    (BatchNorm's and spectral norm's buffers excluded)."""
    return parameter_count(generator_plan(model)), parameter_count(discriminator_plan(model))


def _activations_per_image(model: ModelConfig) -> int:
    """Floats one image's forward pass through G and D keeps for the backward pass."""
    pixels = model.channels * model.image_size**2
    g_maps, d_maps = hidden_maps(generator_plan(model)), hidden_maps(discriminator_plan(model))
    g, d = (sum(c * s * s for c, s in maps) for maps in (g_maps, d_maps))
    if model.kind == "mlp":
        return g * 3 + pixels + pixels + d * 2  # dense, LeakyReLU, BatchNorm; D: dense, LeakyReLU
    return g * 3 + pixels * 2 + d * 3 + pixels  # conv, BatchNorm, ReLU; tanh (D: its input)


def step_bytes(config: RunConfig) -> int:
    """An estimate of a training step's peak memory: weights, gradients and Adam's two moments of
    G and D (plus the EMA copy), and the activations of the batch through G and twice through D
    (real and fake), kept for the backward pass, and their gradients. Measured on CPU (torch,
    28 px, width 32): 60 MB at batch 64 (estimate 66 MB), 400 MB at 1024 (estimate 480 MB)."""
    g, d = parameter_counts(config.model)
    weights = 4 * (g + d) + (g if config.train.ema else 0)
    per_image = _activations_per_image(config.model)
    return FLOAT_BYTES * (weights + 2 * config.train.batch_size * per_image)


def check_step(config: RunConfig, available: int | None = None) -> str | None:
    """Refuse (UsageError) a configuration whose training step cannot fit in `available` bytes
    (None: this machine's free memory; a GPU caller passes the device's). Returns a warning
    line when it needs more than half of it, else None."""
    available = available_memory() if available is None else available
    need = step_bytes(config)
    if available is None:
        return None
    m, t = config.model, config.train
    what = (
        f"--batch-size {t.batch_size} with --g-features {m.g_features} --d-features "
        f"{m.d_features} at {m.image_size} px"
    )
    if need > available:
        raise UsageError(
            f"{what} needs about {gib(need)} per training step but only {gib(available)} is "
            "free; use a smaller --batch-size or --g-features/--d-features"
        )
    if need > WARN_SHARE * available:
        return f"{what} needs about {gib(need)} per training step, {gib(available)} is free"
    return None


def check_batch(config: RunConfig, n_images: int) -> None:
    """`--batch-size` larger than the data set is a UsageError: every batch would repeat images."""
    if config.train.batch_size > n_images:
        raise UsageError(
            f"--batch-size {config.train.batch_size} is larger than the data set "
            f"({n_images} images); use at most {n_images}"
        )


# ---------------------------------------------------------------------------------------------
# generation


def check_images(count: int, shape: tuple[int, ...], what: str, available: int | None = None):
    """Refuse (UsageError) holding `count` uint8 images of `shape` plus one float copy each (the
    generator's output before conversion) when that exceeds the free memory."""
    available = available_memory() if available is None else available
    need = count * math.prod(shape) * (1 + FLOAT_BYTES)
    if available is not None and need > available:
        raise UsageError(
            f"{what} needs {count} images of {'x'.join(map(str, shape))} in memory, about "
            f"{gib(need)}, but only {gib(available)} is free"
        )
