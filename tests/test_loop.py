"""The shared training loop: cadences, and img/s that counts training alone."""

from __future__ import annotations

import types

import numpy as np

from conftest import tiny_config
from dcgan import loop


def test_img_per_s_leaves_out_grids_evaluations_and_checkpoints(monkeypatch):
    clock = [0.0]  # a fake clock: each step takes 1 s, each evaluation 100 s, each grid 10 s
    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock[0])
    config = tiny_config(steps=8, log_every=4, sample_every=2, checkpoint_every=100)
    state = types.SimpleNamespace(config=config, step=0, elapsed=0.0, extra={})

    def train_step(state, batches):
        clock[0] += 1.0
        return {"loss_d": 0.5}

    def evaluate(state):
        clock[0] += 100.0
        return {}

    def samples():
        clock[0] += 10.0
        return np.zeros((1, 1, 28, 28), np.uint8)

    logs = []
    hooks = loop.Hooks(on_log=logs.append, evaluate=evaluate, eval_every=2)
    assert loop.run(state, 400, hooks, lambda idx: idx, train_step, samples) == "done"
    assert [r["step"] for r in logs] == [4, 8]
    batch = config.train.batch_size
    assert [r["img_per_s"] for r in logs] == [4 * batch / 4.0, 4 * batch / 4.0]
    assert logs[-1]["wall_time"] == clock[0] - 110.0  # real time, up to the last log
    assert logs[0]["loss_d"] == 0.5
