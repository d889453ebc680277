"""The run directory: layout, the tolerant JSONL reader, checkpoint listing and the fallback past a
corrupt newest checkpoint, the sweep of killed writes, config.json garbage, and the run lock."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from dcgan import checkpoint as ckpt
from dcgan import rundir, summary
from dcgan.errors import CheckpointError
from dcgan.rundir import Run


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(tiny_config().to_dict()))
    return run


def _checkpoints(run: Path, steps) -> None:
    """Real (untrained) checkpoints of the tiny config at these steps: they pass validation."""
    import torch

    from dcgan.torch_engine import create_state, state_to_arrays

    arrays, meta = state_to_arrays(create_state(tiny_config(), torch.device("cpu")))
    for step in steps:
        ckpt.write_checkpoint(rundir.checkpoint_path(run, step), arrays, {**meta, "step": step})


def test_keep_latest_k_and_find(tmp_path):
    run = _run_dir(tmp_path)
    _checkpoints(run, (10, 20, 30, 40))
    rundir.prune_checkpoints(run, keep=2)
    assert [p.name for p in rundir.list_checkpoints(run)] == [
        "step_000000030.safetensors",
        "step_000000040.safetensors",
    ]
    assert rundir.find_checkpoint(run).name == "step_000000040.safetensors"
    assert rundir.checkpoint_step(rundir.find_checkpoint(run)) == 40
    with pytest.raises(CheckpointError, match="no best"):
        rundir.find_checkpoint(run, "best")


def test_not_a_run(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        rundir.find_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not a dcgan run"):
        rundir.find_checkpoint(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_latest_skips_a_corrupt_newest_checkpoint_and_says_so(tmp_path, damage):
    run = _run_dir(tmp_path)
    _checkpoints(run, (10, 20))
    newest = rundir.checkpoint_path(run, 20)
    data = newest.read_bytes()
    newest.write_bytes({"truncate": data[:-7], "garbage": b"x" * 100, "empty": b""}[damage])
    skipped = []
    found = rundir.find_checkpoint(run, on_skip=lambda path, why: skipped.append((path, why)))
    assert found == rundir.checkpoint_path(run, 10)
    assert [p for p, _ in skipped] == [newest] and "step_000000020" in skipped[0][1]
    ckpt.read_checkpoint(found)  # and it does read back
    rundir.checkpoint_path(run, 10).write_bytes(b"")
    with pytest.raises(CheckpointError, match="no checkpoint of run .* reads back"):
        rundir.find_checkpoint(run)


def test_check_checkpoint_agrees_with_reading(tmp_path):
    path = tmp_path / "c.safetensors"
    ckpt.write_checkpoint(path, {"a": np.ones((3, 5), np.float32)}, {"step": 1})
    ckpt.check_checkpoint(path)
    data = path.read_bytes()
    for cut in (1, 8, 20, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            ckpt.check_checkpoint(path)
        with pytest.raises(CheckpointError):
            ckpt.read_checkpoint(path)


def test_stats_stay_strict_json(tmp_path):
    run = Run(_run_dir(tmp_path))
    run.append_stats({"step": 1, "loss_d": float("nan"), "loss_g": float("inf"), "d": [-math.inf]})
    run.append_stats({"step": 2, "loss_d": np.float32(0.5), "n": np.int64(3)})
    text = run.stats_path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    lines = [
        json.loads(line, parse_constant=lambda c: pytest.fail(c)) for line in text.splitlines()
    ]
    assert lines[0] == {"step": 1, "loss_d": None, "loss_g": None, "d": [None]}
    assert lines[1] == {"step": 2, "loss_d": 0.5, "n": 3}


def test_truncate_stats_on_resume_drops_later_and_torn_lines(tmp_path):
    run = Run(_run_dir(tmp_path))
    for step in (4, 8, 12):
        run.append_stats({"step": step})
    with open(run.stats_path, "a") as f:
        f.write('{"step": 16, "lo')
    assert [r["step"] for r in run.read_stats()] == [4, 8, 12]
    run.truncate_stats(8)
    assert run.stats_path.read_text() == '{"step": 4}\n{"step": 8}\n'


@pytest.mark.parametrize("content", ["[]", "null", "3", '"text"', "{garbage", "", '{"a": 1}'])
def test_config_json_garbage_is_one_checkpoint_error(tmp_path, content):
    run = _run_dir(tmp_path)
    (run / "config.json").write_text(content)
    with pytest.raises(CheckpointError, match="config.json") as e:
        rundir.read_run_config(run)
    assert "\n" not in str(e.value)


def test_lock_sweeps_killed_writes_and_repairs_stats(tmp_path):
    run = Run(_run_dir(tmp_path))
    _checkpoints(run.path, (10,))
    partial = run.path / "checkpoints" / ".step_000000020.safetensors.k3j2x9_a.tmp"
    partial.write_bytes(b"\0" * 1000)
    (run.path / ".config.json.abcdefgh.tmp").write_text("{")
    run.stats_path.write_text('{"step": 1}\n{"st')
    with run.lock():
        assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == [
            "step_000000010.safetensors"
        ]
        assert not (run.path / ".config.json.abcdefgh.tmp").exists()
        assert run.stats_path.read_text() == '{"step": 1}\n'
        assert (run.path / rundir.LOCK_FILE).read_text().strip() == str(os.getpid())


_HOLD = """
import sys, time
from dcgan.rundir import Run
lock = Run(sys.argv[1]).lock()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_trainer_is_refused_naming_the_pid_and_kill_9_frees_it(tmp_path):
    run = Run(_run_dir(tmp_path))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=f"another process \\(pid {holder.pid}\\)") as e:
            run.lock()
        assert "\n" not in str(e.value)
    finally:
        holder.kill()  # SIGKILL: no chance to clean up
        holder.wait()
    deadline = time.monotonic() + 30
    while True:  # the kernel releases the flock with the process
        try:
            lock = run.lock()
            break
        except CheckpointError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    lock.release()
    run.lock().release()  # and released means free again


def test_output_dir_of_runs_and_loose_files(tmp_path):
    run = _run_dir(tmp_path)
    _checkpoints(run, (10,))
    inside = rundir.checkpoint_path(run, 10)
    assert rundir.output_dir(run) == run
    assert rundir.output_dir(inside) == run
    loose = tmp_path / "models" / "g.safetensors"
    loose.parent.mkdir()
    loose.write_bytes(inside.read_bytes())
    assert rundir.output_dir(loose) == loose.parent
    # a folder named checkpoints that is not inside a run is just a folder
    odd = tmp_path / "x" / "checkpoints" / "c.safetensors"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b"")
    assert rundir.output_dir(odd) == odd.parent


def test_summary_reads_stats_metrics_best_and_files(tmp_path):
    run = Run(_run_dir(tmp_path))
    run.append_stats({"step": 4, "epoch": 0, "loss_d": 1.0, "wall_time": 2.0})
    run.append_stats({"step": 4, "eval": True, "digits_fd": 90.0})
    run.append_stats({"step": 8, "epoch": 0, "loss_d": 0.9, "wall_time": 4.0})
    rundir.append_metrics(run.path, {"step": 8, "checkpoint": "latest", "metrics": {"swd": 3.0}})
    rundir.append_metrics(run.path, {"step": 8, "checkpoint": "latest", "metrics": {"fd": 1.0}})
    best = {"metric": "digits", "key": "digits_fd", "value": 90.0, "step": 4}
    meta = {"step": 4, "config": tiny_config().to_dict(), "extra": {"best": best}}
    ckpt.write_checkpoint(rundir.best_path(run.path), {"x": np.zeros(1)}, meta)
    _checkpoints(run.path, (8,))
    run.save_samples(4, np.zeros((4, 1, 28, 28), np.uint8))
    run.update_info(data={"name": "digits", "skipped": 0})
    s = summary.summarize(run.path)
    assert s.last["step"] == 8 and [r["step"] for r in s.evals] == [4]
    assert s.measured["metrics"] == {"swd": 3.0, "fd": 1.0}
    assert s.best == best
    assert [p.name for p in s.checkpoints] == ["step_000000008.safetensors"]
    assert [p.name for p in s.samples] == ["step_000000004.png"]
    assert s.info["data"]["name"] == "digits"
    assert s.flat_config()["train.batch_size"] == 16
    assert summary.differing_keys([{"a": 1, "b": 2}, {"a": 1, "b": 3}]) == ["b"]


def test_info_records_the_data(tmp_path):
    from dcgan.datasets import ImageSet

    run = Run(_run_dir(tmp_path))
    data = ImageSet(np.zeros((5, 1, 28, 28), np.uint8), "pics", skipped=["a.jpg", "b.png"])
    run.update_info(data=rundir.data_info(data), device="cpu")
    run.update_info(torch="2.x")  # merged, not replaced
    info = run.info()
    assert info["data"]["count"] == 5 and info["data"]["skipped"] == 2 and info["device"] == "cpu"
    assert info["torch"] == "2.x"
    (run.path / rundir.INFO_FILE).write_text("[1")
    assert run.info() == {}  # unreadable: the report says "not recorded"


@pytest.mark.parametrize("content", ["[]", "null", "{garbage"])
def test_compare_and_resume_on_a_garbage_config_are_one_line(tmp_path, content):
    from conftest import assert_one_line_error, run_dcgan

    run = _run_dir(tmp_path)
    (run / "config.json").write_text(content)
    for args in (["compare", run], ["report", run]):
        assert_one_line_error(run_dcgan(*args, cwd=tmp_path, check=False), 1, "config.json")
    # resume reads the config from the checkpoint; this run has none: still one line
    assert_one_line_error(run_dcgan("train", "--resume", run, cwd=tmp_path, check=False), 1, "")


def test_compare_reads_a_run_with_a_torn_stats_line(tmp_path):
    from conftest import run_dcgan

    run = Run(_run_dir(tmp_path))
    run.append_stats({"step": 4, "epoch": 0, "wall_time": 2.0})
    with open(run.stats_path, "a") as f:
        f.write('{"step": 8, "ep')
    out = run_dcgan("compare", run.path, cwd=tmp_path).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["step"] == ["4"]


TINY = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16", "--batch-size", "16"]
TINY += ["--log-every", "2", "--checkpoint-every", "2", "--no-progress", "--no-report"]


def test_train_resumes_past_a_corrupt_newest_checkpoint_and_says_which(tmp_path):
    from conftest import run_dcgan

    run_dcgan("train", "--steps", 4, "--keep", 3, "--name", "r", *TINY, cwd=tmp_path)
    run = tmp_path / "runs" / "r"
    newest = rundir.checkpoint_path(run, 4)
    newest.write_bytes(newest.read_bytes()[:1000])  # a disk that filled mid-write
    partial = run / "checkpoints" / ".step_000000006.safetensors.x1y2z3w4.tmp"
    partial.write_bytes(b"\0" * 100)
    proc = run_dcgan("train", "--resume", run, "--steps", 6, cwd=tmp_path)
    assert "skipped step_000000004.safetensors" in proc.stderr
    assert not partial.exists()
    assert rundir.checkpoint_step(rundir.find_checkpoint(run)) == 6
    steps = [r["step"] for r in Run(run).read_stats()]
    assert steps == [2, 4, 6]  # the lines past the checkpoint it resumed from were replaced


def test_a_second_trainer_of_a_run_is_one_line_naming_the_pid(tmp_path):
    from conftest import assert_one_line_error, run_dcgan

    run_dcgan("train", "--steps", 2, "--name", "r", *TINY, cwd=tmp_path)
    run = Run(tmp_path / "runs" / "r")
    with run.lock():
        proc = run_dcgan("train", "--resume", run.path, "--steps", 4, cwd=tmp_path, check=False)
    assert_one_line_error(proc, 1, f"being trained by another process (pid {os.getpid()})")
    run_dcgan("train", "--resume", run.path, "--steps", 4, cwd=tmp_path)  # free again
