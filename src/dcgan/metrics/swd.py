"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, ProGAN).

Pure NumPy. Protocol as published: 7x7 neighbourhoods, 128 per image per pyramid level, each
level's descriptors normalised per channel by their own set's mean and std, then 4 repeats of
128 random unit directions (512 in all); the distance is reported x1e3, per level and averaged.
"""

from __future__ import annotations

import numpy as np

PATCH = 7
PATCHES_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
# ProGAN keeps pyramid levels down to 16 px (1024 -> ... -> 16). At 28 px that would leave a
# single level, so we keep every level at least two patches wide (>= 14 px): 28 px gives 28 and
# 14, 32 px gives 32 and 16, and powers of two match ProGAN's levels exactly.
MIN_LEVEL_SIDE = 2 * PATCH

_G1 = np.array([1, 4, 6, 4, 1], np.float32) / 16  # the separable 5x5 binomial (Gaussian) filter


def pyramid_sides(side: int) -> list[int]:
    """The sides of the pyramid levels used for images of `side` px, largest first."""
    sides = []
    while side >= MIN_LEVEL_SIDE:
        sides.append(side)
        side = (side + 1) // 2
    if not sides:
        raise ValueError(f"SWD needs images of at least {MIN_LEVEL_SIDE} px, got {side}")
    return sides


def _blur(x: np.ndarray) -> np.ndarray:
    """5x5 binomial filter over the last two axes, mirror padding (scipy.ndimage 'mirror')."""
    x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(2, 2), (0, 0)], mode="reflect")
    x = sum(w * x[..., i : i + x.shape[-2] - 4, :] for i, w in enumerate(_G1))
    x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(2, 2)], mode="reflect")
    return sum(w * x[..., i : i + x.shape[-1] - 4] for i, w in enumerate(_G1))


def laplacian_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    """float32 (N, C, H, W) -> `levels` band-pass images, finest first, the last a low-pass."""
    pyramid = [images.astype(np.float32)]
    for _ in range(1, levels):
        coarse = _blur(pyramid[-1])[..., ::2, ::2]
        up = np.zeros_like(pyramid[-1])
        up[..., ::2, ::2] = coarse
        pyramid[-1] = pyramid[-1] - 4 * _blur(up)  # x4: only a quarter of `up` is non-zero
        pyramid.append(coarse)
    return pyramid


def _patches(level: np.ndarray, rng: np.random.Generator, per_image: int) -> np.ndarray:
    """(N, C, H, W) -> (N * per_image, C, PATCH, PATCH) float32 at random positions."""
    n, _, h, w = level.shape
    windows = np.lib.stride_tricks.sliding_window_view(level, (PATCH, PATCH), axis=(2, 3))
    rows = rng.integers(0, h - PATCH + 1, size=(n, per_image))
    cols = rng.integers(0, w - PATCH + 1, size=(n, per_image))
    picked = windows[np.arange(n)[:, None], :, rows, cols]  # (N, P, C, PATCH, PATCH)
    return picked.reshape(n * per_image, *picked.shape[2:])


def descriptors(
    images: np.ndarray,
    seed: int = 0,
    per_image: int = PATCHES_PER_IMAGE,
    batch: int = 1024,
) -> dict[int, np.ndarray]:
    """Normalised patch descriptors of uint8 images (N, C, H, W), per pyramid level.

    Returns {level side: float32 (N * per_image, C * 49)}. Patch positions come from `seed`, so
    two calls on the same images give identical descriptors. Memory: 4 * 49 * C * per_image bytes
    per image and level (25 kB for grayscale at the protocol's 128 patches).
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"SWD wants uint8 (N, C, H, W), got {images.dtype} {images.shape}")
    sides = pyramid_sides(images.shape[2])
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in sides]
    for i in range(0, len(images), batch):
        for k, level in enumerate(laplacian_pyramid(images[i : i + batch], len(sides))):
            parts[k].append(_patches(level, rng, per_image))
    out = {}
    for side, chunks in zip(sides, parts):
        d = np.concatenate(chunks)
        d -= d.mean(axis=(0, 2, 3), keepdims=True)
        d /= d.std(axis=(0, 2, 3), keepdims=True) + 1e-8  # + eps: a constant channel stays finite
        out[side] = d.reshape(len(d), -1)
    return out


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, seed: int = 0, chunk: int = 32) -> float:
    """Mean over DIR_REPEATS * DIRS_PER_REPEAT random unit directions of the 1-D Wasserstein-1
    distance between the projections of descriptor sets a (M, D) and b (M', D).

    Sets of different sizes are cut to the smaller size by a seeded random subset, since the
    1-D distance between equal-size samples is the mean gap between sorted values.
    """
    rng = np.random.default_rng(seed)
    m = min(len(a), len(b))
    if len(a) > m:
        a = a[np.sort(rng.choice(len(a), m, replace=False))]
    if len(b) > m:
        b = b[np.sort(rng.choice(len(b), m, replace=False))]
    total, count = 0.0, 0
    for _ in range(DIR_REPEATS):
        dirs = rng.standard_normal((a.shape[1], DIRS_PER_REPEAT))
        dirs = (dirs / np.sqrt((dirs**2).sum(axis=0, keepdims=True))).astype(np.float32)
        for j in range(0, DIRS_PER_REPEAT, chunk):
            # (k, M) rows, so each sort runs over contiguous memory
            proj_a = dirs[:, j : j + chunk].T @ a.T
            proj_b = dirs[:, j : j + chunk].T @ b.T
            proj_a.sort(axis=1)
            proj_b.sort(axis=1)
            total += float(np.abs(proj_a - proj_b).mean(dtype=np.float64)) * len(proj_a)
            count += len(proj_a)
    return total / count


def swd_from_descriptors(
    fake: dict[int, np.ndarray], real: dict[int, np.ndarray], seed: int = 0
) -> dict[str, float]:
    """{"swd_<side>": distance x1e3 per level, "swd": their mean} (lower is better)."""
    if fake.keys() != real.keys():
        raise ValueError(f"SWD levels differ: {sorted(fake)} vs {sorted(real)}")
    out = {f"swd_{s}": 1e3 * sliced_wasserstein(fake[s], real[s], seed) for s in fake}
    out["swd"] = float(np.mean(list(out.values())))
    return out


def swd(fake: np.ndarray, real: np.ndarray, seed: int = 0, per_image: int = PATCHES_PER_IMAGE):
    """SWD between uint8 image sets (N, C, H, W) of the same shape; see `swd_from_descriptors`."""
    return swd_from_descriptors(
        descriptors(fake, seed, per_image), descriptors(real, seed, per_image), seed
    )
