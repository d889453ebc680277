"""Speed options of the torch engine (precision, channels_last, compile) and dcgan.perf."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import fit, save_checkpoint, tiny_config
from dcgan.config import RunConfig
from dcgan.errors import UsageError
from dcgan.loop import Hooks
from dcgan.torch_engine import create_state, load_state

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


def test_amx_is_read_from_the_cpu_flags(tmp_path):
    from dcgan.perf import amx_bf16

    info = tmp_path / "cpuinfo"
    flags = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 {}\n\nprocessor\t: 1\n"
    info.write_text(flags.format("amx_tile amx_bf16 amx_int8"))
    assert amx_bf16(str(info))
    info.write_text(flags.format("avx512_vnni"))  # Zen 4/5: AVX512-BF16 without AMX
    assert not amx_bf16(str(info))
    assert not amx_bf16(str(tmp_path / "absent"))


class _Group:
    """A stand-in for a multi-process group: `any` answers as if another rank had said `other`."""

    def __init__(self, other: bool):
        self.other = other

    def any(self, flag: bool) -> bool:
        return flag or self.other


@pytest.mark.parametrize("amx", [True, False])
def test_auto_precision_is_bf16_only_on_cpus_with_amx(monkeypatch, amx):
    from dcgan import perf
    from dcgan.torch_engine import resolve_precision

    monkeypatch.setattr(perf, "amx_bf16", lambda: amx)
    assert resolve_precision("auto", CPU) == ("bf16" if amx else "fp32")
    # given precisions are kept; GPUs stay fp32 until measured there
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    # every rank takes the same: bf16 only if all have AMX
    assert resolve_precision("auto", CPU, _Group(other=True)) == "fp32"
    assert resolve_precision("auto", CPU, _Group(other=False)) == ("bf16" if amx else "fp32")


@pytest.mark.parametrize("amx", [True, False])
def test_auto_precision_is_what_the_step_computes_in(monkeypatch, digits, amx):
    from dcgan import perf

    monkeypatch.setattr(perf, "amx_bf16", lambda: amx)
    config = tiny_config(steps=2, precision="auto")
    auto, fp32, bf16 = (
        create_state(_with(config, precision=p), CPU) for p in ("auto", "fp32", "bf16")
    )
    assert auto.precision == ("bf16" if amx else "fp32")
    for state in (auto, fp32, bf16):
        fit(state, digits)
    same = bf16 if amx else fp32
    a, b = _params(auto), _params(same)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # bit-exact with the precision it chose


@pytest.mark.parametrize("amx", [True, False])
def test_a_run_records_and_reports_the_precision_auto_chose(monkeypatch, tmp_path, digits, amx):
    from dcgan import perf
    from dcgan.report import write_report
    from dcgan.session import Callbacks, train

    monkeypatch.setattr(perf, "amx_bf16", lambda: amx)
    heard = []

    class Heard(Callbacks):
        def message(self, text):
            heard.append(text)

    result = train(
        tiny_config(steps=2), data=digits, runs_dir=tmp_path, device="cpu", callbacks=Heard()
    )
    info = json.loads((result.run_dir / "info.json").read_text())
    chosen = "bf16" if amx else "fp32"
    assert info["precision"] == chosen
    said = [m for m in heard if m.startswith("precision:")]
    assert said == (
        [
            "precision: bf16, the faster one on this CPU (AMX); pass --precision fp32 to train in fp32"
        ]
        if amx
        else []
    )
    html = write_report([result.run_dir], tmp_path / "report.html").read_text()
    assert f"torch / cpu / auto ({chosen})" in html


def test_the_numpy_engine_takes_auto_as_fp32():
    config = tiny_config(engine="numpy")
    assert config.train.precision == "auto"
    from dcgan.numpy_engine.train import create_state as numpy_state

    assert numpy_state(config, "cpu").precision == "fp32"


def test_channels_last_matches_the_default_layout(digits):
    # fp32: in bf16 the two layouts round differently (auto is bf16 on a CPU with AMX)
    nhwc = create_state(tiny_config(steps=4, channels_last=True, precision="fp32"), CPU)
    nchw = create_state(tiny_config(steps=4, channels_last=False, precision="fp32"), CPU)
    assert nhwc.generator.main[3].weight.is_contiguous(memory_format=torch.channels_last)
    fit(nhwc, digits), fit(nchw, digits)
    a, b = _params(nhwc), _params(nchw)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_resume_may_switch_layout_and_stays_close(tmp_path, digits):
    config = tiny_config(steps=6, channels_last=True, precision="fp32")
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
    assert (train.precision, train.channels_last, train.compile) == ("auto", True, False)


def test_cli_flags_reach_the_config():
    import argparse

    from dcgan.cli import train as cli_train

    parser = argparse.ArgumentParser()
    cli_train.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--precision", "bf16", "--no-channels-last", "--compile"])
    train = cli_train._config_from_args(args).train
    assert (train.precision, train.channels_last, train.compile) == ("bf16", False, True)
    train = cli_train._config_from_args(parser.parse_args(["train"])).train
    assert (train.precision, train.channels_last, train.compile) == ("auto", True, False)


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
