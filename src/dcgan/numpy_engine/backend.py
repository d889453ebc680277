"""The array-module switch: NumPy on the CPU, CuPy (if installed) for --device cuda.

Ops never import an array library themselves; they ask `array_module(x)` for the module that owns
their input, so the same code runs on either.
"""

from __future__ import annotations

import numpy as np


def get_xp(device: str = "cpu"):
    """The array module for a device name: numpy for "cpu", cupy for "cuda" (ImportError if absent)."""
    if device == "cpu":
        return np
    if device == "cuda":
        import cupy

        return cupy
    raise ValueError(f"the numpy engine runs on cpu or cuda, not {device!r}")


def array_module(x):
    """numpy, or cupy when `x` is a cupy array (checked without importing cupy)."""
    return np if isinstance(x, np.ndarray) else _cupy_for(x)


def _cupy_for(x):
    if type(x).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def as_strided(xp, x, shape, strides):
    """A strided view of `x` (strides in bytes), from whichever module owns it."""
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def to_numpy(x) -> np.ndarray:
    """Bring an array back to host memory as a NumPy array (no copy for NumPy input)."""
    return x if isinstance(x, np.ndarray) else x.get()
