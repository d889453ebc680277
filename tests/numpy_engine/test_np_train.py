"""NumPy-engine training: exact resume, every loss, EMA, stats and refusals (no torch needed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import fit, save_checkpoint, tiny_config
from dcgan.datasets import ImageSet, load_digits
from dcgan.errors import UsageError
from dcgan.loop import Hooks
from dcgan.numpy_engine.serialize import state_to_arrays
from dcgan.numpy_engine.train import (
    create_state,
    load_state,
    resolve_device,
)


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return ImageSet(images=load_digits().images[:400], name="digits400")


def _with_steps(config, steps: int):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))


def _arrays(state):
    arrays, meta = state_to_arrays(state)
    return arrays, {k: v for k, v in meta.items() if k not in ("elapsed", "extra")}


@pytest.mark.parametrize(
    "options",
    [dict(), dict(ema=True, loss="lsgan"), dict(loss="hinge", n_critic=2)],
    ids=["bce", "lsgan-ema", "hinge-ncritic2"],
)
def test_resume_is_exact(tmp_path, digits, options):
    config = tiny_config(steps=10, **options)
    whole = create_state(config)
    fit(whole, digits)

    half = create_state(_with_steps(config, 5))
    fit(half, digits)
    path = save_checkpoint(half, tmp_path, keep=2)
    del half
    np.random.seed(99)  # nothing global may matter
    resumed = load_state(path, "cpu", config)
    assert resumed.step == 5
    fit(resumed, digits)

    a, meta_a = _arrays(whole)
    b, meta_b = _arrays(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key  # bit for bit
    assert meta_a == meta_b


def test_training_changes_both_nets_logs_and_samples(digits):
    config = tiny_config(steps=6, log_every=3, sample_every=4, ema=True)
    state = create_state(config)
    before = {k: v.copy() for k, v in state_to_arrays(state)[0].items()}
    logs, samples = [], []
    fit(state, digits, Hooks(on_log=logs.append, on_samples=lambda s, x: samples.append((s, x))))
    after = state_to_arrays(state)[0]
    for prefix in ("generator.", "discriminator.", "generator_ema."):
        changed = [
            k for k in after if k.startswith(prefix) and not np.array_equal(before[k], after[k])
        ]
        assert changed, prefix
    assert [r["step"] for r in logs] == [3, 6]
    assert set(logs[0]) == {
        "loss_d",
        "loss_g",
        "d_real",
        "d_fake",
        "step",
        "epoch",
        "img_per_s",
        "wall_time",
    }
    assert all(np.isfinite(list(r.values())).all() for r in logs)
    assert [s for s, _ in samples] == [4, 6]
    images = samples[-1][1]
    assert images.dtype == np.uint8 and images.shape == (config.train.sample_count, 1, 28, 28)


def test_stop_request_ends_the_loop(digits):
    state = create_state(tiny_config(steps=50))
    assert fit(state, digits, Hooks(should_stop=lambda: state.step >= 3)) == "stopped"
    assert state.step == 3


def test_wgan_gp_eval_and_devices_are_refused():
    with pytest.raises(UsageError, match="double backprop"):
        create_state(tiny_config(loss="wgan-gp", n_critic=2))
    with pytest.raises(UsageError, match="eval-every"):
        create_state(tiny_config(eval_every=5))
    with pytest.raises(UsageError, match="mps"):
        resolve_device("mps")
    assert resolve_device("cpu") == "cpu"
