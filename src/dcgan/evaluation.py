"""Evaluating generators with the metrics: during training (fixed latents, a stats line, the best
checkpoint) and after it (a line of `RUN/metrics.jsonl` per `dcgan eval`, written by rundir.py).

No printing here: the CLI reports. The metrics themselves live in `dcgan.metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import draw
from .config import RunConfig
from .metrics import METRICS, Evaluator, cheap_metric_names, is_better, parse_metric_names
from .sampling import auto_batch_size, cycled_labels

# The eval latents are their own stream (draw.EVAL), drawn once on the CPU: every evaluation of a
# run scores the same z, and training noise is untouched.


def default_metric_names(config: RunConfig) -> tuple[str, ...]:
    """The cheap metrics for the run's data: digits + SWD on the bundled digits, else SWD."""
    return cheap_metric_names(config.data.source == "digits")


def training_metric_names(config: RunConfig) -> tuple[str, ...]:
    """The names `--eval-metrics` chose (validated), or the defaults for the data."""
    text = config.train.eval_metrics
    return parse_metric_names(text) if text else default_metric_names(config)


def training_evaluator(config: RunConfig, data, device, cache_dir=None) -> Evaluator:
    """The Evaluator of a run's `eval_every` evaluations, on its training data."""
    return Evaluator(
        data,
        training_metric_names(config),
        cache_dir=cache_dir,
        device=str(device),
        progress=None,  # a nested bar would fight the training bar
    )


class TrainingEval:
    """The `Hooks.evaluate` of a run: scores `state.sampler` on fixed latents (through the
    engine's `generate`), reports a record and keeps `checkpoints/best.safetensors` (through the
    run's `saving.Saver`) for the first metric's key.

    The best value is kept in `state.extra["best"]` so it travels in every checkpoint and a
    resumed run only replaces best.safetensors with something better.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        engine,
        config: RunConfig,
        saver,
        device,
        on_result: Callable[[dict[str, Any], bool], None] = lambda record, improved: None,
    ):
        self.evaluator, self.engine, self.saver = evaluator, engine, saver
        self.on_result = on_result
        self.metric = evaluator.names[0]
        self.key = METRICS[self.metric].key + evaluator.suffix
        n, dim = config.train.eval_num, config.model.latent_dim
        self.z = draw.latents(n, dim, config.train.seed, draw.EVAL)
        self.labels = cycled_labels(n, config.model.num_classes)
        self.batch_size = auto_batch_size(device, config.model.image_size)

    def __call__(self, state) -> dict[str, float]:
        started = time.perf_counter()
        fake = self.engine.generate(state.sampler, self.z, self.batch_size, labels=self.labels)
        metrics = self.evaluator(fake)
        record = {"step": state.step, "eval": True, **metrics}
        record["eval_seconds"] = round(time.perf_counter() - started, 3)
        value = metrics.get(self.key)
        best = state.extra.get("best")
        improved = (
            value is not None
            and np.isfinite(value)
            and (
                best is None
                or best.get("key") != self.key
                or is_better(self.metric, value, best["value"])
            )
        )
        if improved:
            state.extra["best"] = {"metric": self.metric, "key": self.key, "value": value}
            state.extra["best"]["step"] = state.step
            self.saver.save_best(state)
        self.on_result(record, improved)
        return metrics


def eval_record(
    step: int,
    checkpoint: str,
    metrics: dict[str, float],
    num: int,
    ref: str,
    seed: int,
    seconds: float,
) -> dict[str, Any]:
    """One line of metrics.jsonl."""
    return {
        "step": step,
        "checkpoint": checkpoint,
        "metrics": metrics,
        "num": num,
        "ref": ref,
        "seed": seed,
        "seconds": round(seconds, 3),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
