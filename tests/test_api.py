"""`dcgan.train`, the library entry point: a new run, callbacks, resume, and a resume that has
nothing to do (which writes nothing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dcgan
import dcgan.errors
import dcgan.saving
from conftest import tiny_config
from dcgan.checkpoint import read_checkpoint, read_meta
from dcgan.datasets import ImageSet, load_digits
from dcgan.rundir import list_checkpoints


class Recorder(dcgan.Callbacks):
    def __init__(self):
        self.events = []

    def started(self, run_dir, config, data, step, end):
        self.events.append(("started", step, end))

    def logged(self, record):
        self.events.append(("logged", record["step"]))

    def sampled(self, step, path):
        assert path.is_file()
        self.events.append(("sampled", step))

    def message(self, text):
        self.events.append(("message", text))

    def finished(self, result):
        self.events.append(("finished", result.status))


@pytest.fixture(scope="module")
def digits():
    return ImageSet(images=load_digits().images[:512], name="digits512")


def test_train_then_resume_from_python(tmp_path, digits):
    config = tiny_config(steps=8)
    rec = Recorder()
    result = dcgan.train(config, data=digits, runs_dir=tmp_path, name="api", callbacks=rec)
    assert (result.status, result.step, result.total_steps) == ("done", 8, 8)
    assert result.run_dir == tmp_path / "api" and result.checkpoint.is_file()
    assert rec.events[0] == ("started", 0, 8) and rec.events[-1] == ("finished", "done")
    assert ("logged", 4) in rec.events and ("sampled", 6) in rec.events

    more = dcgan.train(resume=result.run_dir, changes={"steps": 12}, data=digits)
    assert (more.status, more.step) == ("done", 12)
    assert read_meta(list_checkpoints(result.run_dir)[-1])["step"] == 12

    # a resume with nothing to do says so and writes nothing
    # (but the lock file, which holds the PID of the process that trains the run)
    files = lambda: {
        p: p.stat().st_mtime_ns
        for p in result.run_dir.rglob("*")
        if p.is_file() and p.name != ".lock"
    }
    before = files()
    rec = Recorder()
    same = dcgan.train(resume=result.run_dir, changes={"steps": 10}, data=digits, callbacks=rec)
    assert same.status == "up-to-date" and "already at step 12" in rec.events[0][1]
    assert before == files()


def test_only_the_length_engine_and_speed_change_on_resume(tmp_path, digits):
    result = dcgan.train(tiny_config(steps=4), data=digits, runs_dir=tmp_path, name="r")
    with pytest.raises(dcgan.errors.UsageError, match="--lr-g cannot change"):
        dcgan.train(resume=result.run_dir, changes={"lr_g": 1e-3}, data=digits)


def test_checkpoints_carry_no_rng_state(tmp_path, digits):
    # randomness is a function of (seed, step, critic): nothing device-bound to restore
    result = dcgan.train(tiny_config(steps=4), data=digits, runs_dir=tmp_path, name="n")
    arrays, meta = read_checkpoint(result.checkpoint)
    assert not any(k.startswith("rng.") for k in arrays) and "rng" not in meta


def test_a_nan_loss_rolls_back_with_half_the_learning_rate(tmp_path, digits, monkeypatch):
    # every step poisons the weights and the loss, as --lr inf did (the config now refuses an lr
    # above 1); the guard rolls back twice, then stops with one error
    from dcgan import torch_engine

    real_step = torch_engine.train_step

    def poisoned(state, inputs):
        out = real_step(state, inputs)
        with torch.no_grad():
            for p in state.generator.parameters():
                p.fill_(float("inf"))
        out["loss_g"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(torch_engine, "train_step", poisoned)
    config = tiny_config(steps=30, checkpoint_every=4)
    rec = Recorder()
    with pytest.raises(dcgan.saving.DivergedError, match="after 2 rollback"):
        dcgan.train(config, data=digits, runs_dir=tmp_path, name="nan", callbacks=rec)
    rolled = [e[1] for e in rec.events if e[0] == "message" and "rolled back" in e[1]]
    assert len(rolled) == 2 and "the start" in rolled[0]
    # nothing non-finite was ever checkpointed
    for path in list_checkpoints(tmp_path / "nan"):
        arrays, _ = read_checkpoint(path)
        assert all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f")


def test_a_divergence_recovers_after_a_rollback(tmp_path, digits, monkeypatch):
    # one injected NaN at step 6: back to the step-4 checkpoint at half the lr, then done
    from dcgan import torch_engine

    real_step = torch_engine.train_step
    calls = {"n": 0}

    def flaky(state, inputs):
        out = real_step(state, inputs)
        calls["n"] += 1
        if calls["n"] == 6:
            out["loss_d"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(torch_engine, "train_step", flaky)
    config = tiny_config(steps=12, checkpoint_every=4, log_every=2)
    rec = Recorder()
    result = dcgan.train(config, data=digits, runs_dir=tmp_path, name="flaky", callbacks=rec)
    assert result.status == "done" and result.step == 12
    assert any("rolled back to step 4" in e[1] for e in rec.events if e[0] == "message")
    assert result.config.train.lr_g == config.train.lr_g / 2
    saved = dcgan.config.RunConfig.from_dict(read_meta(result.checkpoint)["config"])
    assert saved.train.lr_d == config.train.lr_d / 2  # the checkpoint says how it went on


def test_training_writes_the_generator_folder(tmp_path, digits):
    from safetensors.numpy import load_file

    from dcgan import checkpoint as ckpt

    result = dcgan.train(tiny_config(steps=4, ema=True), data=digits, runs_dir=tmp_path, name="g")
    arrays, _ = ckpt.read_checkpoint(result.checkpoint)
    tensors = load_file(str(result.run_dir / "generator" / "model.safetensors"))
    ema = ckpt.subset(arrays, "generator_ema")
    assert tensors.keys() == ema.keys() and all(np.array_equal(tensors[k], ema[k]) for k in ema)


def test_a_full_disk_names_the_file_and_keeps_the_last_checkpoint(tmp_path, digits, monkeypatch):
    import errno

    from dcgan import files

    config = tiny_config(steps=8, checkpoint_every=4)
    real_write = files.atomic_write

    def full(path, data):
        if "step_000000008" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(files, "atomic_write", full)
    with pytest.raises(dcgan.saving.DiskFullError) as info:
        dcgan.train(config, data=digits, runs_dir=tmp_path, name="full")
    text = str(info.value)
    assert "step_000000008" in text and "at step 8" in text and "step_000000004" in text
    assert "free at least" in text and "\n" not in text
    assert [p.name for p in list_checkpoints(tmp_path / "full")] == ["step_000000004.safetensors"]
    read_checkpoint(list_checkpoints(tmp_path / "full")[-1])
