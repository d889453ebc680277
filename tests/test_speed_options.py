"""Speed options of the torch engine (precision, channels_last, compile) and dcgan.perf."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import tiny_config
from dcgan.config import RunConfig
from dcgan.errors import UsageError
from dcgan.torch_engine import Hooks, create_state, fit, load_state, save_checkpoint

CPU = torch.device("cpu")


def _with(config: RunConfig, **train) -> RunConfig:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train)).validate()


def _params(state) -> dict[str, np.ndarray]:
    modules = {"g": state.generator, "d": state.discriminator}
    return {
        f"{p}.{k}": v.detach().float().numpy()
        for p, m in modules.items()
        for k, v in m.state_dict().items()
    }


@pytest.fixture(scope="module")
def digits():
    from dcgan.datasets import load_digits

    images = load_digits(28, 1)
    return dataclasses.replace(images, images=np.asarray(images.images[:512]))


def test_bf16_steps_run_and_stay_finite(digits):
    state = create_state(tiny_config(steps=4, precision="bf16"), CPU)
    logs = []
    fit(state, digits, Hooks(on_log=logs.append))
    assert state.step == 4 and logs
    assert all(np.isfinite(v) for r in logs for v in r.values())
    # autocast leaves the weights (and so the checkpoints) in fp32
    assert all(p.dtype == torch.float32 for p in state.generator.parameters())
    assert all(np.isfinite(v).all() for v in _params(state).values())


def test_bf16_changes_the_numerics_but_not_the_trajectory(digits):
    fp32 = create_state(tiny_config(steps=3, precision="fp32"), CPU)
    bf16 = create_state(tiny_config(steps=3, precision="bf16"), CPU)
    fit(fp32, digits), fit(bf16, digits)
    a, b = _params(fp32), _params(bf16)
    assert any(not np.array_equal(a[k], b[k]) for k in a)
    for k in a:  # three Adam steps of lr 2e-4 from the same start: close, not equal
        np.testing.assert_allclose(a[k], b[k], atol=0.05, rtol=0.05, err_msg=k)


def test_channels_last_matches_the_default_layout(digits):
    nhwc = create_state(tiny_config(steps=4, channels_last=True), CPU)
    nchw = create_state(tiny_config(steps=4, channels_last=False), CPU)
    assert nhwc.generator.main[3].weight.is_contiguous(memory_format=torch.channels_last)
    fit(nhwc, digits), fit(nchw, digits)
    a, b = _params(nhwc), _params(nchw)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_resume_may_switch_layout_and_stays_close(tmp_path, digits):
    config = tiny_config(steps=6, channels_last=True)
    whole = create_state(config, CPU)
    fit(whole, digits)
    half = create_state(_with(config, steps=3), CPU)
    fit(half, digits)
    path = save_checkpoint(half, tmp_path, keep=2)
    resumed = load_state(path, CPU, _with(config, channels_last=False))
    assert resumed.generator.main[3].weight.is_contiguous()
    fit(resumed, digits)
    a, b = _params(whole), _params(resumed)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize(
    "train, message",
    [
        (dict(precision="fp16"), "--precision fp16"),
        (dict(precision="bf16", engine="numpy"), "torch engine"),
        (dict(compile=True, engine="numpy"), "torch engine"),
    ],
)
def test_bad_speed_options_are_usage_errors(train, message):
    with pytest.raises(UsageError, match=message):
        tiny_config(**train)


def test_speed_options_round_trip_and_old_configs_get_defaults():
    config = tiny_config(precision="bf16", channels_last=False, compile=True)
    assert RunConfig.from_dict(config.to_dict()) == config
    old = config.to_dict()
    for key in ("precision", "channels_last", "compile"):
        del old["train"][key]
    train = RunConfig.from_dict(old).train
    assert (train.precision, train.channels_last, train.compile) == ("fp32", True, False)


def test_cli_flags_reach_the_config():
    import argparse

    from dcgan.cli import train as cli_train

    parser = argparse.ArgumentParser()
    cli_train.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--precision", "bf16", "--no-channels-last", "--compile"])
    train = cli_train._config_from_args(args).train
    assert (train.precision, train.channels_last, train.compile) == ("bf16", False, True)
    train = cli_train._config_from_args(parser.parse_args(["train"])).train
    assert (train.precision, train.channels_last, train.compile) == ("fp32", True, False)


def test_tune_malloc_is_glibc_only_and_imports_no_torch():
    code = (
        "import sys; from dcgan.perf import tune_malloc; r = tune_malloc(); "
        "print(r, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    glibc = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None
    assert out == [str(glibc), "False"]


@pytest.mark.skipif(
    not os.environ.get("DCGAN_TEST_COMPILE"),
    reason="torch.compile takes minutes on a small CPU; set DCGAN_TEST_COMPILE=1 to run it",
)
def test_compiled_training_matches_eager(digits):
    eager = create_state(tiny_config(steps=3), CPU)
    compiled = create_state(tiny_config(steps=3, compile=True), CPU)
    fit(eager, digits), fit(compiled, digits)
    a, b = _params(eager), _params(compiled)
    assert a.keys() == b.keys()  # compiling in place keeps the state dict keys
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-3, atol=1e-4, err_msg=k)
