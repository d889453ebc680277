"""Every random number dcgan draws, as pure functions of integers, torch-free and version-stable.

Two kinds of draws, both from NumPy's PCG64 (`numpy.random.default_rng`), whose streams NumPy
keeps stable across releases (NEP 19), so neither engine nor a torch upgrade changes them:

- **Sampling latents** (`generate`, `eval`, the fixed-noise grids): `latents(n, dim, seed)` is the
  first n rows of one endless stream per seed, so it is prefix-stable by construction (`--num 10`
  gives the first 10 images of `--num 64`) and the same in both engines on every device.
- **Training draws** (each step's z, the gradient-penalty weights): `training_normal` and
  `training_uniform` are functions of (seed, step, critic index, purpose) for the *global* batch;
  a rank takes its rows with `shard`. A checkpoint therefore carries no RNG state, resume works
  on any device and across devices, and N ranks see the same numbers as one process.

Also here: the nice mode's candidate count and selection, shared by both engines.
"""

from __future__ import annotations

import math

import numpy as np

from .config import check_seed
from .errors import UsageError

# the purposes of training draws: distinct streams for the same (seed, step, critic)
Z, GP_WEIGHTS, LABELS = 0, 1, 2
# one more word in the seed sequence keeps training streams apart from sampling streams
_TRAINING = 0x7472_6169  # "trai"


# sampling streams besides the user's own (`--seed S` is stream 0)
USER, GRID, EVAL = 0, 1, 2


def latents(n: int, latent_dim: int, seed: int, stream: int = USER) -> np.ndarray:
    """n standard-normal latents, float32 (n, latent_dim): the first n rows of the stream of
    `seed`. Stream USER is `numpy.random.default_rng(seed).standard_normal((n, latent_dim))`
    rounded to float32; GRID (the fixed-noise grids) and EVAL (training-time evaluation) seed
    PCG64 with [seed, stream] so they never repeat the user's images. Prefix-stable: the first k
    rows of latents(n) are latents(k) for any k <= n."""
    check_seed(seed)
    rng = np.random.default_rng(seed if stream == USER else [seed, stream])
    return rng.standard_normal((n, latent_dim)).astype(np.float32)


def _training_rng(seed: int, step: int, critic: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([_TRAINING, seed, step, critic, purpose])


def training_normal(seed: int, step: int, critic: int, n: int, dim: int) -> np.ndarray:
    """The global batch's z for generator step `step` and critic update `critic`: float32 (n, dim)."""
    rng = _training_rng(seed, step, critic, Z)
    return rng.standard_normal((n, dim)).astype(np.float32)


def training_uniform(seed: int, step: int, critic: int, n: int) -> np.ndarray:
    """The global batch's gradient-penalty interpolation weights in [0, 1): float32 (n,)."""
    return _training_rng(seed, step, critic, GP_WEIGHTS).random(n).astype(np.float32)


def training_labels(seed: int, step: int, critic: int, n: int, num_classes: int) -> np.ndarray:
    """The global batch's fake labels, uniform over the classes: int64 (n,)."""
    return _training_rng(seed, step, critic, LABELS).integers(0, num_classes, n, dtype=np.int64)


def grid_draws(
    n: int, latent_dim: int, seed: int, num_classes: int = 0, rows: int = 10
) -> tuple[np.ndarray, np.ndarray | None]:
    """The progress grids' latents (stream GRID) and labels: n latents, or for a conditional run
    one row of 8 latents per class for the first `rows` classes, the same 8 in every row (so a
    column shows one z across the classes): (z (R*8, latent_dim), labels (R*8,))."""
    if not num_classes:
        return latents(n, latent_dim, seed, GRID), None
    r = min(num_classes, rows)
    z = np.tile(latents(8, latent_dim, seed, GRID), (r, 1))
    return z, np.repeat(np.arange(r, dtype=np.int64), 8)


def shard(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank `rank`'s contiguous share of a global batch (len(rows) divisible by `world`)."""
    per = len(rows) // world
    return rows[rank * per : (rank + 1) * per]


MAX_NICE_CANDIDATES = 1_000_000  # the nice mode holds every candidate image at once


def nice_candidates(n: int, fraction: float, image_shape: tuple[int, ...] | None = None) -> int:
    """How many samples the nice mode draws to keep n of them (the best `fraction`).

    The candidates are generated and held together, so their count is capped at
    MAX_NICE_CANDIDATES and, given `image_shape` (C, H, W), at what fits in free memory
    (`limits.check_images`): `--nice 1e-9` is one line, not a 1.6 TB allocation."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise UsageError(f"--nice must be a number in (0, 1], got {fraction}")
    count = math.ceil(n / fraction)
    if count > MAX_NICE_CANDIDATES:
        raise UsageError(
            f"--num {n} --nice {fraction:g} would draw {count} candidates, more than "
            f"{MAX_NICE_CANDIDATES}; use a larger --nice or a smaller --num "
            f"(at most --nice {n / MAX_NICE_CANDIDATES:.2g} for --num {n})"
        )
    if image_shape is not None:
        from .limits import check_images

        check_images(count, image_shape, f"--num {n} --nice {fraction:g}")
    return count


def best_indices(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest scores, best first (ties in drawing order)."""
    return np.argsort(-scores, kind="stable")[:n]


_TRUNCATION = 0x7472_756E  # "trun": the resampling streams of truncated latents


def check_truncation(psi: float | None, flag: str = "--truncation") -> float | None:
    """None (off) or a positive finite PSI; anything else is a UsageError."""
    if psi is not None and not (math.isfinite(psi) and psi > 0):
        raise UsageError(f"{flag} must be a positive number (e.g. 0.7), got {psi}")
    return psi


def truncated_latents(
    n: int, latent_dim: int, seed: int, psi: float | None, stream: int = USER
) -> np.ndarray:
    """`latents(n, latent_dim, seed, stream)` with the truncation trick (BigGAN): every component
    with |z| > psi is redrawn until it is within [-psi, psi], so it follows N(0, 1) conditioned
    on |z| <= psi; components already inside keep their value (a large psi changes nothing).

    Prefix-stable and a pure function of (seed, psi) like `latents`: redraw round r reads row i of
    its own stream [seed, stream, "trun", r]. Proposals are uniform on [-psi, psi], accepted with
    probability exp(-z^2 / 2) (exact for the truncated normal; at least 0.41 accepted per round
    up to psi 3, so a few dozen rounds clear 10^6 values). psi None is `latents` itself.
    """
    z = latents(n, latent_dim, seed, stream)
    if psi is None:
        return z
    check_truncation(psi)
    bad = np.abs(z) > psi
    r = 0
    while bad.any():
        rows = int(np.nonzero(bad.any(axis=1))[0][-1]) + 1  # rows past the last bad one unused
        rng = np.random.default_rng([seed, stream, _TRUNCATION, r])
        u = rng.random((rows, latent_dim, 2))  # row-major: row i's draws come first, whatever n
        proposal = ((2 * u[..., 0] - 1) * psi).astype(np.float32)
        accept = bad[:rows] & (u[..., 1] < np.exp(-0.5 * proposal.astype(np.float64) ** 2))
        z[:rows][accept] = proposal[accept]
        bad[:rows] &= ~accept
        r += 1
    return z
