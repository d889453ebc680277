"""The training loop both engines share: batch order, step counting and the cadences (log, sample
grid, evaluate, checkpoint). Engine-neutral and torch-free: each engine passes its own batch
placement, step and sampling functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import RunConfig
from .datasets import batch_indices, steps_per_epoch


@dataclass
class Hooks:
    """What the loop reports to; the CLI passes a run directory's tracker, tests pass nothing."""

    on_log: Callable[[dict[str, float]], None] = lambda stats: None
    on_samples: Callable[[int, np.ndarray], None] = lambda step, images: None
    on_checkpoint: Callable[[Any], None] = lambda state: None
    on_progress: Callable[[int], None] = lambda step: None
    evaluate: Callable[[Any], dict[str, float]] | None = None
    eval_every: int = 0
    should_stop: Callable[[], bool] = lambda: False


def ema_decay(step: int, decay: float) -> float:
    """The EMA decay for the update after `step` generator steps: min(decay, (1 + step) / (10 +
    step)), the warm-up of TensorFlow's ExponentialMovingAverage. Without it the average is
    dominated by the untrained start for ~1/(1 - decay) steps (measured: at decay 0.999 the EMA
    generator still drew blobs at 1,400 steps, digits FD 621 against 106 for the raw one); with
    it the average spans about the last tenth of training until the step count reaches ~10 /
    (1 - decay)."""
    return min(decay, (1.0 + step) / (10.0 + step))


def total_steps(config: RunConfig, n_images: int) -> int:
    """Generator updates in the whole run: --steps, or --epochs over the data."""
    cfg = config.train
    if cfg.steps is not None:
        return cfg.steps
    return cfg.epochs * steps_per_epoch(n_images, cfg.batch_size) // cfg.n_critic


def run(
    state,
    n_images: int,
    hooks: Hooks,
    batch: Callable[[np.ndarray], Any],
    train_step: Callable[[Any, list], dict[str, Any]],
    samples: Callable[[], np.ndarray],
) -> str:
    """Train `state` (with .config, .step, .elapsed, .extra) to the configured length.

    `batch(indices)` gives one model-range batch on the engine's device, `train_step(state,
    batches)` does n_critic D updates and one G update and returns device scalars, `samples()`
    gives the fixed-noise grid as uint8. Returns "done", or "stopped" when hooks.should_stop().
    The caller saves a checkpoint afterwards (the loop calls hooks.on_checkpoint on cadence).
    """
    cfg = state.config.train
    spe = state.extra["steps_per_epoch"] = steps_per_epoch(n_images, cfg.batch_size)
    end = total_steps(state.config, n_images)
    sums: dict[str, Any] = {}
    count, last_time, last_step = 0, time.perf_counter(), state.step
    paused = 0.0  # seconds of this log interval spent on grids, evaluations and checkpoints
    while state.step < end:
        if hooks.should_stop():
            return "stopped"
        batches, epoch = [], 0
        for k in range(cfg.n_critic):
            epoch, idx = batch_indices(
                n_images, cfg.batch_size, cfg.seed, state.step * cfg.n_critic + k
            )
            batches.append(batch(idx))
        stats = train_step(state, batches)
        for key, value in stats.items():
            sums[key] = sums[key] + value if key in sums else value
        count += 1
        state.step += 1
        hooks.on_progress(state.step)
        if state.step % cfg.log_every == 0 or state.step == end:
            now = time.perf_counter()
            state.elapsed += now - last_time
            record = {k: float(v) / count for k, v in sums.items()}  # one host sync per interval
            images = (state.step - last_step) * cfg.batch_size * cfg.n_critic
            record |= {
                "step": state.step,
                "epoch": epoch,
                "img_per_s": images / max(now - last_time - paused, 1e-9),  # training alone
                "wall_time": state.elapsed,
            }
            hooks.on_log(record)
            sums, count, last_time, last_step, paused = {}, 0, now, state.step, 0.0
        started = time.perf_counter()
        epoch_end = (state.step * cfg.n_critic) % spe < cfg.n_critic
        if state.step % cfg.sample_every == 0 or epoch_end or state.step == end:
            hooks.on_samples(state.step, samples())
        if hooks.evaluate is not None and hooks.eval_every and state.step % hooks.eval_every == 0:
            hooks.evaluate(state)
        if state.step % cfg.checkpoint_every == 0:
            hooks.on_checkpoint(state)
        paused += time.perf_counter() - started
    return "done"
