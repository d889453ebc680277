"""What both engines' sampling share, torch-free: how many latent rows to draw so latents are
prefix-stable, and the "nice" mode's candidate count and selection."""

from __future__ import annotations

import math

import numpy as np

from .errors import UsageError

LATENT_ROWS = 256  # latents are drawn in whole blocks of this many rows


def latent_rows(n: int) -> int:
    """Rows to draw for n latents: torch's CPU randn fills blocks of 16 values and redraws a
    ragged tail, so randn(n) is not a prefix of randn(n + 1); whole blocks of LATENT_ROWS rows (a
    multiple of 16 values for any latent size), sliced to n, make the first k of n the latents of
    n = k. Both engines draw this many and slice."""
    return -(-n // LATENT_ROWS) * LATENT_ROWS


def nice_candidates(n: int, fraction: float) -> int:
    """How many samples the nice mode draws to keep n of them (the best `fraction`)."""
    if not 0 < fraction <= 1:
        raise UsageError(f"--nice must be in (0, 1], got {fraction}")
    return math.ceil(n / fraction)


def keep_best(candidates: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n candidates D scores highest, best first (ties in drawing order), with their scores."""
    best = np.argsort(-scores, kind="stable")[:n]
    return candidates[best], scores[best]
