"""The training loop: cadences, img/s that counts training alone, the divergence check."""

from __future__ import annotations

import types

import numpy as np

from conftest import tiny_config
from dcgan import loop
from dcgan.engines import Solo


def test_img_per_s_leaves_out_grids_evaluations_and_checkpoints(monkeypatch):
    clock = [0.0]  # a fake clock: each step takes 1 s, each evaluation 100 s, each grid 10 s
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock[0])
    config = tiny_config(steps=8, log_every=4, sample_every=2, checkpoint_every=100)
    state = types.SimpleNamespace(
        config=config, step=0, elapsed=0.0, extra={}, group=Solo(), sampler=None
    )

    def train_step(state, inputs):
        clock[0] += 1.0
        return {"loss_d": 0.5}

    def evaluate(state):
        clock[0] += 100.0
        return {}

    def grid(state):
        clock[0] += 10.0
        return np.zeros((1, 1, 28, 28), np.uint8)

    logs = []
    hooks = loop.Hooks(on_log=logs.append, evaluate=evaluate, eval_every=2)
    engine = types.SimpleNamespace(
        feeder=lambda s, d: lambda idx: idx,
        train_step=train_step,
        generate=lambda g, z, labels=None: grid(None),
    )
    assert loop.loop(engine, state, _Data(400), hooks) == "done"
    assert [r["step"] for r in logs] == [4, 8]
    batch = config.train.batch_size
    assert [r["img_per_s"] for r in logs] == [4 * batch / 4.0, 4 * batch / 4.0]
    assert logs[-1]["wall_time"] == clock[0] - 110.0  # real time, up to the last log
    assert logs[0]["loss_d"] == 0.5


class _Data:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_a_non_finite_loss_ends_the_loop_as_diverged():
    config = tiny_config(steps=40, log_every=4, sample_every=100, checkpoint_every=8)
    state = types.SimpleNamespace(
        config=config, step=0, elapsed=0.0, extra={}, group=Solo(), sampler=None
    )
    saved, warnings = [], []

    def train_step(state, inputs):
        return {"loss_d": float("nan") if state.step >= 9 else 0.5}

    engine = types.SimpleNamespace(
        feeder=lambda s, d: lambda idx: idx,
        train_step=train_step,
        generate=lambda g, z, labels=None: np.zeros((2, 1, 4, 4), np.uint8),
    )
    hooks = loop.Hooks(on_checkpoint=lambda s: saved.append(s.step), on_warning=warnings.append)
    assert loop.loop(engine, state, _Data(400), hooks) == "diverged"
    assert state.step == 12  # caught at the first log after the NaN
    assert saved == [8]  # nothing checkpointed after it
    assert "NaN" in warnings[0]
