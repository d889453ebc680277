"""torch.randn on the CPU from a seed, re-done in NumPy, so both engines draw the same latents.

`dcgan generate --seed S` and the fixed-noise grids use torch's CPU generator; replaying its
MT19937 stream and Box-Muller here gives the numpy engine the same z without importing torch.
"""

from __future__ import annotations

import numpy as np


def torch_randn(n: int, dim: int, seed: int) -> np.ndarray:
    """float32 (n, dim) equal to torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    up to float rounding in log/sin/cos (torch uses SLEEF's 1-ulp vector versions)."""
    size = n * dim
    stream = _mt19937(seed)
    if size >= 16:
        out = _normal_fill(stream, size)
    else:
        out = _normal_serial(stream, size)
    return out.reshape(n, dim)


def _mt19937(seed: int) -> np.random.RandomState:
    # torch seeds MT19937 with init_genrand(seed & 0xffffffff), as RandomState does for an int
    return np.random.RandomState(seed & 0xFFFFFFFF)


def _raw32(stream: np.random.RandomState, count: int) -> np.ndarray:
    """The next `count` raw 32-bit outputs of the generator, as uint64."""
    return stream.randint(0, 2**32, size=count, dtype=np.uint64)


def _uniform_float(stream: np.random.RandomState, count: int) -> np.ndarray:
    # torch's uniform_real_distribution<float>: the low 24 bits of one draw, / 2^24
    return (_raw32(stream, count) & 0xFFFFFF).astype(np.float64) / 2.0**24


def _normal_fill(stream: np.random.RandomState, size: int) -> np.ndarray:
    """torch's normal_fill: uniforms for every element, Box-Muller on blocks of 16 (u1 from the
    first 8, u2 from the last 8); a ragged tail recomputes the last 16 from fresh uniforms."""
    data = _uniform_float(stream, size)
    blocks = size // 16
    data[: blocks * 16] = _box_muller_16(data[: blocks * 16].reshape(blocks, 16)).ravel()
    if size % 16:
        data[size - 16 :] = _box_muller_16(_uniform_float(stream, 16).reshape(1, 16)).ravel()
    return data.astype(np.float32)


def _box_muller_16(u: np.ndarray) -> np.ndarray:
    # float32 arithmetic as torch's normal_fill_16 does it (theta is formed in double, then cast)
    u = u.astype(np.float32)
    radius = np.sqrt(np.float32(-2) * np.log(np.float32(1) - u[:, :8]))
    theta = (2.0 * np.pi * u[:, 8:].astype(np.float64)).astype(np.float32)
    return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=1)


def _normal_serial(stream: np.random.RandomState, size: int) -> np.ndarray:
    """torch's path below 16 elements: normal_distribution<double>, pairs from two 53-bit
    uniforms, the second value of each pair cached for the next element."""
    pairs = (size + 1) // 2
    raw = _raw32(stream, 4 * pairs).reshape(pairs, 2, 2)
    bits = (raw[:, :, 0] << np.uint64(32)) | raw[:, :, 1]  # random64: first draw is the high word
    u = (bits & np.uint64(2**53 - 1)).astype(np.float64) / 2.0**53
    radius = np.sqrt(-2.0 * np.log1p(-u[:, 1]))
    theta = 2.0 * np.pi * u[:, 0]
    return (
        np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
        .ravel()[:size]
        .astype(np.float32)
    )
