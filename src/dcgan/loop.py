"""The training loop, top to bottom: each step's batch indices and random draws as pure functions
of (seed, step, critic index) for the global batch, this rank's shard of them, the engine's step,
and the cadences (log, sample grid, evaluation, checkpoint).

The loop calls the engine (`dcgan.engines.Engine`) and reports to `Hooks`; it writes no file
itself (`dcgan.session` passes hooks that write the run directory; tests pass none). Torch-free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import draw
from .config import PENALTY_LOSSES, RunConfig
from .datasets import ImageSet, batch_indices, steps_per_epoch
from .engines import StepInputs
from .watch import CollapseWatch


@dataclass
class Hooks:
    """What the loop reports to: `train` passes a run directory's writers, tests pass nothing."""

    on_log: Callable[[dict[str, float]], None] = lambda stats: None
    on_samples: Callable[[int, np.ndarray], None] = lambda step, images: None
    on_checkpoint: Callable[[Any], None] = lambda state: None
    on_progress: Callable[[int], None] = lambda step: None
    evaluate: Callable[[Any], dict[str, float]] | None = None
    eval_every: int = 0
    should_stop: Callable[[], bool] = lambda: False
    on_warning: Callable[[str], None] = lambda text: None  # warnings and notes, one line each
    threads: Any = None  # a perf.ThreadGovernor, told each step's time (None: threads fixed)


def loop(engine, state, data: ImageSet, hooks: Hooks) -> str:
    """Train `state` to its configured length. Returns "done"; "stopped" when hooks.should_stop()
    said so on any rank (every rank stops at the same step); "diverged" when a loss or D's
    output became non-finite (nothing is checkpointed after that). The caller saves a checkpoint
    afterwards; the loop calls hooks.on_checkpoint on cadence."""
    cfg, group = state.config.train, state.group
    n = len(data)
    spe = steps_per_epoch(n, cfg.batch_size)
    end = total_steps(state.config, n)
    batch = engine.feeder(state, data)
    labels = data.labels if state.config.model.num_classes else None  # a conditional run's
    model = state.config.model
    z_grid, y_grid = draw.grid_draws(
        cfg.sample_count, model.latent_dim, cfg.seed, model.num_classes, cfg.grid_classes
    )
    watch = CollapseWatch(cfg.log_every, cfg.loss)
    sums: dict[str, Any] = {}
    count, last_time, last_step = 0, time.perf_counter(), state.step
    paused = 0.0  # seconds of this log interval spent on grids, evaluations and checkpoints
    while state.step < end:
        if group.any(hooks.should_stop()):
            return "stopped"
        began = time.perf_counter()
        inputs, epoch = step_inputs(state.config, state.step, n, batch, group, labels)
        inputs.ema_decay = ema_decay(state.step, cfg.ema_decay)
        stats = engine.train_step(state, inputs)
        if hooks.threads is not None:  # fewer threads when other processes take cores
            note = hooks.threads.after_step(time.perf_counter() - began)
            if note:
                hooks.on_warning(note)
        for key, value in stats.items():
            sums[key] = sums[key] + value if key in sums else value
        count += 1
        state.step += 1
        hooks.on_progress(state.step)
        checkpoint_due = state.step % cfg.checkpoint_every == 0
        if state.step % cfg.log_every == 0 or state.step == end or checkpoint_due:
            now = time.perf_counter()
            state.elapsed += now - last_time
            record = {k: float(v) / count for k, v in sums.items()}  # one host sync per interval
            record = group.mean(record)
            if not all(math.isfinite(v) for v in record.values()):
                hooks.on_warning(
                    f"training diverged by step {state.step}: a loss became "
                    f"{'NaN' if any(math.isnan(v) for v in record.values()) else 'infinite'}"
                )
                return "diverged"
            images = (state.step - last_step) * cfg.batch_size * cfg.n_critic
            record |= {
                "step": state.step,
                "epoch": epoch,
                "img_per_s": images / max(now - last_time - paused, 1e-9),  # training alone
                "wall_time": state.elapsed,
            }
            if hooks.threads is not None:
                record["threads"] = hooks.threads.current
            hooks.on_log(record)
            for warning in watch.losses(record):
                hooks.on_warning(warning)
            sums, count, last_time, last_step, paused = {}, 0, now, state.step, 0.0
        started = time.perf_counter()
        epoch_end = (state.step * cfg.n_critic) % spe < cfg.n_critic
        if group.is_main and (state.step % cfg.sample_every == 0 or epoch_end or state.step == end):
            grid = engine.generate(state.sampler, z_grid, labels=y_grid)
            hooks.on_samples(state.step, grid)
            for warning in watch.samples(state.step, grid):
                hooks.on_warning(warning)
        if hooks.evaluate is not None and hooks.eval_every and state.step % hooks.eval_every == 0:
            hooks.evaluate(state)
        if checkpoint_due:
            hooks.on_checkpoint(state)
        paused += time.perf_counter() - started
    return "done"


def step_inputs(
    config: RunConfig, step: int, n_images: int, batch, group, labels: np.ndarray | None = None
) -> tuple[StepInputs, int]:
    """The inputs of generator step `step` on this rank, and the epoch it is in. Batch indices,
    latents, penalty weights and fake labels are drawn for the global batch from (seed, step,
    critic index) and sharded by rank, so the samples of a step are the same whatever the world
    size. `labels`: the data's labels (N,), which a conditional run needs."""
    cfg, dim = config.train, config.model.latent_dim
    rank, world = group.rank, group.world
    reals, zs, weights, epoch, shards = [], [], [], 0, []
    for k in range(cfg.n_critic):
        epoch, idx = batch_indices(n_images, cfg.batch_size, cfg.seed, step * cfg.n_critic + k)
        shards.append(draw.shard(idx, rank, world))
        reals.append(batch(shards[-1]))
        z = draw.training_normal(cfg.seed, step, k, cfg.batch_size, dim)
        zs.append(draw.shard(z, rank, world))
        if cfg.loss in PENALTY_LOSSES:
            w = draw.training_uniform(cfg.seed, step, k, cfg.batch_size)
            weights.append(draw.shard(w, rank, world))
    if cfg.n_critic > 1:  # G's fresh fake after the critic steps
        z = draw.training_normal(cfg.seed, step, cfg.n_critic, cfg.batch_size, dim)
        zs.append(draw.shard(z, rank, world))
    inputs = StepInputs(reals, zs, weights or None)
    if config.model.num_classes:
        inputs.labels = [np.asarray(labels[i], np.int64) for i in shards]
        classes = config.model.num_classes  # the fakes' labels: uniform over the classes
        inputs.fake_labels = [
            draw.shard(
                draw.training_labels(cfg.seed, step, k, cfg.batch_size, classes), rank, world
            )
            for k in range(len(zs))
        ]
    return inputs, epoch


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
