"""kill -9 during checkpoint writes (issue 15): a tiny training that checkpoints every step is
SIGKILLed at random moments, 20 times; after every kill the newest checkpoint reads back and
the next run resumes from it. The NumPy engine restarts fastest (no torch import): about
30 s on two busy CPU cores (DCGAN_KILL_TRIALS to change)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_dcgan
from dcgan import checkpoint as ckpt
from dcgan import rundir

TINY = ["--g-features", "4", "--d-features", "4", "--latent-dim", "8", "--batch-size", "8"]
TRIALS = int(os.environ.get("DCGAN_KILL_TRIALS", "20"))


def _newest_step(run) -> int:
    """The step of the newest checkpoint, which must read back (writes are atomic renames)."""
    files = rundir.list_checkpoints(run)
    if not files:
        return -1
    _, meta = ckpt.read_checkpoint(files[-1])  # a torn newest file would raise here
    return meta["step"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_during_checkpoint_writes_never_loses_a_loadable_checkpoint(tmp_path):
    env = {**os.environ, "DCGAN_HOME": str(tmp_path / "home"), "TORCH_HOME": str(tmp_path / "t")}
    run = tmp_path / "runs" / "k"
    first = ["train", "--name", "k", "--steps", "1000000", *TINY, "--checkpoint-every", "1"]
    first += ["--engine", "numpy"]  # no torch import: a restart costs a fraction of a second
    first += ["--keep", "3", "--log-every", "1000000", "--sample-every", "1000000"]
    rng = random.Random(15)
    steps = []
    for trial in range(TRIALS):
        argv = first if trial == 0 else ["train", "--resume", str(run)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "dcgan", *argv, "--no-progress"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        before = steps[-1] if steps else -1
        deadline = time.monotonic() + 120
        try:
            # wait until this run has written a checkpoint of its own: it is in the write loop
            while _newest_step(run) <= before:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "no checkpoint within 120 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.2))  # a random moment among the writes
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            proc.stderr.close()
        steps.append(_newest_step(run))
        assert steps[-1] > before, steps
    # the last checkpoint resumes to a normal end and generates
    end = steps[-1] + 2
    run_dcgan("train", "--resume", run, "--steps", end, "--no-progress", cwd=tmp_path)
    assert _newest_step(run) == end
    run_dcgan("generate", run, "--num", 2, "--out", tmp_path / "g", cwd=tmp_path)
    assert len(list((tmp_path / "g").glob("*.png"))) == 2
