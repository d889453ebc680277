"""Fuzzing what a user or an attacker can hand dcgan (issue 15): checkpoint metadata and
config.json contents. Every case must end in one line on stderr and a non-zero exit, never a
traceback. In-process (`dcgan.cli.main`) so that hypothesis can try hundreds of cases."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcgan import checkpoint as ckpt
from dcgan import rundir
from dcgan.cli import main
from dcgan.config import (
    DCGAN_SIZES,
    ENGINES,
    LOSSES,
    MODEL_KINDS,
    PRECISIONS,
    RunConfig,
)

TINY = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16", "--batch-size", "16"]

# any JSON value (NaN and infinities included: Python's json reads them)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
NOT_INT = JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, int))
NOT_NUMBER = JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, (int, float)))
NOT_DICT = JSON.filter(lambda v: not isinstance(v, dict))


def _bad_int(low: int, high: int):
    """Anything but an integer in [low, high]: other JSON, or an integer outside."""
    return NOT_INT | st.integers(max_value=low - 1) | st.integers(min_value=high + 1)


def _bad_choice(choices):
    return JSON.filter(lambda v: isinstance(v, bool) or v not in choices)


def _bad_real(ok):
    """Anything but a number that `ok` accepts (NaN and the infinities are never accepted)."""
    return (
        NOT_NUMBER
        | st.floats().filter(lambda x: not ok(x))
        | st.integers().filter(lambda x: not ok(x))
    )


LR_OK = lambda x: 0 < x <= 1  # noqa: E731
BETA_OK = lambda x: 0 <= x < 1  # noqa: E731


# (section, field) -> values that must be refused
BAD_FIELDS = {
    ("model", "kind"): _bad_choice(MODEL_KINDS),
    ("model", "image_size"): _bad_choice(DCGAN_SIZES),
    ("model", "channels"): _bad_choice((1, 3)),
    ("model", "latent_dim"): _bad_int(1, 4096),
    ("model", "g_features"): _bad_int(1, 4096),
    ("model", "d_features"): _bad_int(1, 4096),
    ("data", "source"): JSON.filter(
        lambda v: not isinstance(v, str) or not v or not v.isprintable()
    ),
    ("data", "channels"): JSON.filter(
        lambda v: v is not None and (isinstance(v, bool) or v not in (1, 3))
    ),
    ("train", "loss"): _bad_choice(LOSSES),
    ("train", "engine"): _bad_choice(ENGINES),
    ("train", "precision"): _bad_choice(PRECISIONS),
    ("train", "batch_size"): _bad_int(1, 65536),
    ("train", "epochs"): _bad_int(1, 10**9),
    ("train", "steps"): _bad_int(1, 10**9).filter(lambda v: v is not None),
    ("train", "seed"): _bad_int(0, 2**63 - 1),
    ("train", "lr_g"): _bad_real(LR_OK),
    ("train", "lr_d"): _bad_real(LR_OK),
    ("train", "beta1"): _bad_real(BETA_OK),
    ("train", "ema_decay"): _bad_real(BETA_OK),
    ("train", "ema"): JSON.filter(lambda v: not isinstance(v, bool)),
    ("train", "n_critic"): _bad_int(1, 100),
    ("train", "keep_checkpoints"): _bad_int(1, 10_000),
    ("train", "eval_every"): _bad_int(0, 10**9),
}
FIELD = st.sampled_from(sorted(BAD_FIELDS)).flatmap(
    lambda key: st.tuples(st.just(key), BAD_FIELDS[key])
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 2-step tiny run on the bundled digits, trained in-process."""
    cwd = tmp_path_factory.mktemp("fuzz")
    argv = ["train", "--steps", "2", "--name", "r", "--runs-dir", str(cwd / "runs"), *TINY]
    with contextlib.redirect_stderr(io.StringIO()):
        assert main([*argv, "--no-progress"]) == 0
    return cwd / "runs" / "r"


def _refused(argv: list[str]) -> str:
    """Run the CLI in-process: it must return non-zero with exactly one line on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)  # an exception escaping here is the traceback a user would see
        except SystemExit as e:  # argparse's own one-line usage errors
            code = e.code
    lines = err.getvalue().strip().splitlines()
    assert code != 0 and len(lines) == 1, (code, err.getvalue())
    return lines[0]


def _write_meta(path: Path, arrays: dict[str, np.ndarray], meta) -> None:
    from safetensors.numpy import save

    path.write_bytes(save(arrays, metadata={"dcgan": json.dumps(meta)}))


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def saved(run):
    return ckpt.read_checkpoint(rundir.find_checkpoint(run))


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("meta"), NOT_DICT),
    st.tuples(st.just("config"), NOT_DICT),
    st.tuples(st.just("step"), _bad_int(0, 10**12)),
    st.tuples(st.just("field"), FIELD),
    st.tuples(st.just("section"), st.tuples(st.sampled_from(["model", "data", "train"]), NOT_DICT)),
))  # fmt: skip
def test_hostile_checkpoint_metadata(run, saved, tmp_path_factory, case):
    arrays, good = saved
    kind, value = case
    meta = json.loads(json.dumps(good))
    if kind == "meta":
        meta = value
    elif kind in ("config", "step"):
        meta[kind] = value
    elif kind == "section":
        meta["config"][value[0]] = value[1]
    else:
        (section, name), bad = value
        meta["config"][section][name] = bad
    folder = tmp_path_factory.mktemp("meta")
    path = folder / "step_000000002.safetensors"
    _write_meta(path, arrays, meta)
    line = _refused(["generate", str(path), "--num", "1", "--out", str(folder / "out")])
    assert line.startswith("dcgan generate: error: checkpoint")
    assert not (folder / "out").exists()


@FUZZ
@given(case=st.one_of(
    st.tuples(st.just("whole"), JSON),
    st.tuples(st.just("field"), FIELD),
    st.tuples(st.just("text"), st.text(max_size=30)),
))  # fmt: skip
def test_hostile_config_json(run, tmp_path_factory, case):
    kind, value = case
    folder = tmp_path_factory.mktemp("cfg") / "r"
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy(rundir.find_checkpoint(run), folder / "checkpoints")
    config = json.loads((run / "config.json").read_text())
    if kind == "whole":
        text = json.dumps(value)
    elif kind == "text":
        text = value  # not JSON at all, mostly
    else:
        (section, name), bad = value
        config[section][name] = bad
        text = json.dumps(config)
    if kind != "field":
        try:
            RunConfig.from_dict(json.loads(text))
            return  # hypothesis found a valid config by chance: nothing to refuse
        except Exception:
            pass
    (folder / "config.json").write_text(text)
    line = _refused(["train", "--resume", str(folder), "--steps", "3", "--no-progress"])
    assert line.startswith("dcgan train: error:") and "config.json" in line


# ---------------------------------------------------------------------------------------------
# hostile flags: one line each, and no run directory left behind by a refused train


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--seed", "-1"], "--seed must be an integer from 0 to 9223372036854775807"),
        (["train", "--seed", "99999999999999999999"], "--seed must be an integer from 0 to"),
        (["train", "--g-features", "100000"], "--g-features must be an integer from 1 to 4096"),
        (["train", "--lr", "inf"], "--lr-g must be a number in (0, 1], got inf"),
        (["train", "--lr", "10"], "--lr-g must be a number in (0, 1], got 10"),
        (["train", "--lr-d", "nan"], "--lr-d"),
        (["train", "--model", "mlp", "--image-size", "4096"], "--image-size must be an integer"),
    ],
)
def test_hostile_train_flags(tmp_path, argv, fragment):
    line = _refused([*argv, "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
    assert fragment in line and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["generate", "--seed", "-1"], "--seed must be an integer from 0 to"),
        (["generate", "--nice", "1e-9"], "--num 64 --nice 1e-09 would draw 64000000000 candidates"),
        (["generate", "--nice", "0"], "--nice must be a number in (0, 1]"),
        (["eval", "--seed", "-1", "--num", "100", "--metrics", "swd"], "--seed must be an integer"),
    ],
)
def test_hostile_sampling_flags(run, tmp_path, argv, fragment):
    line = _refused([argv[0], str(run), *argv[1:], "--device", "cpu"])
    assert fragment in line


def test_a_step_that_cannot_fit_in_memory_is_refused(tmp_path, monkeypatch):
    from dcgan import limits

    monkeypatch.setattr(limits, "available_memory", lambda: 10**9)
    argv = ["train", "--batch-size", "4096", "--runs-dir", str(tmp_path / "runs")]
    line = _refused(argv)
    assert "needs about 1.9 GB per training step but only 1.0 GB is free" in line
    assert not (tmp_path / "runs").exists()
