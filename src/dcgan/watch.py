"""The collapse watch: notices, from the logged stats and the fixed-noise grids, when D has won
or the samples have collapsed, and says so once with a suggestion. Engine-neutral, torch-free;
the runner's loop feeds it, for both engines."""

from __future__ import annotations

import numpy as np

# D has won when, for this many consecutive logged steps, D(G(z)) < FAKE_FLOOR and D(x) > REAL_CEIL
WON_STEPS = 300
FAKE_FLOOR, REAL_CEIL = 0.02, 0.98
# the grid has collapsed when its images differ by less than this (mean over pixels of the
# standard deviation across the grid's images, in uint8 levels); real digits measure ~80-100,
# a healthy 28 px run's grid 60-90 from step 500 on, one image repeated 0
COLLAPSED_SPREAD = 4.0
# a freshly initialised G draws nearly the same grey for every z (spread < 1): grids count only
# from this step on, and only two collapsed grids in a row warn
GRID_WARMUP_STEPS = 300

SUGGESTION = "try --loss hinge, a lower --lr, or --augment for a small data set"


class CollapseWatch:
    """Feed it each stats record (`losses`) and each grid (`samples`); each returns the warnings
    to show now (each kind at most once per run session)."""

    def __init__(self, log_every: int, loss: str):
        self.log_every = log_every
        # bce logs sigmoid(D), lsgan D itself with targets 0 and 1: both read as "how real";
        # hinge and Wasserstein critics have no such scale, so only the grid is watched
        self.scaled = loss in ("bce", "lsgan")
        self.won_since: int | None = None
        self.collapsed_grids = 0
        self.warned: set[str] = set()

    def losses(self, record: dict) -> list[str]:
        d_real, d_fake = record.get("d_real"), record.get("d_fake")
        if d_real is None or d_fake is None or not self.scaled:
            return []
        step = record["step"]
        if d_fake < FAKE_FLOOR and d_real > REAL_CEIL:
            if self.won_since is None:
                self.won_since = step - self.log_every
            if step - self.won_since >= WON_STEPS:
                return self._once(
                    "won",
                    f"warning: D has won since step {self.won_since} (D(x) {d_real:.3f}, "
                    f"D(G(z)) {d_fake:.3f}): G gets almost no gradient; {SUGGESTION}",
                )
        else:
            self.won_since = None
        return []

    def samples(self, step: int, grid: np.ndarray) -> list[str]:
        if len(grid) < 2 or step < GRID_WARMUP_STEPS:
            return []
        spread = grid_spread(grid)
        self.collapsed_grids = self.collapsed_grids + 1 if spread < COLLAPSED_SPREAD else 0
        if self.collapsed_grids >= 2:
            return self._once(
                "collapsed",
                f"warning: the samples have collapsed at step {step} (the grid's images differ "
                f"by {spread:.1f} levels of 255 on average); {SUGGESTION}",
            )
        return []

    def _once(self, kind: str, text: str) -> list[str]:
        if kind in self.warned:
            return []
        self.warned.add(kind)
        return [text]


def grid_spread(images: np.ndarray) -> float:
    """How much the images of a grid differ: the mean over pixels of the standard deviation
    across images, uint8 (N, C, H, W) -> levels of 255."""
    return float(images.astype(np.float32).std(axis=0).mean())
