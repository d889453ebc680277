"""Shared fixtures: tiny configs, real data locations, small image folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcgan import rundir
from dcgan.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from dcgan.loop import Hooks, loop

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CIFAR_DIR = SHARED / "cifar10_test"


def run_dcgan(*args, cwd: Path, check: bool = True, **env) -> subprocess.CompletedProcess:
    """Run `python -m dcgan ARGS` as a user would, with its own cache dirs under `cwd`."""
    env = {
        **os.environ,
        "DCGAN_HOME": str(cwd / "home"),
        "TORCH_HOME": str(cwd / "torch"),  # no Inception weights from the developer's cache
        **env,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "dcgan", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dcgan {args} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    """Bad input: exit `code`, exactly one line on stderr containing `fragment`, no traceback."""
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]


def engine_of(state):
    """The engine module whose TrainState `state` is (a test may build a NumPy state from a config
    that names the torch engine)."""
    return sys.modules[type(state).__module__]


def fit(state, data, hooks: Hooks | None = None) -> str:
    """Train `state` to its configured length with dcgan's loop and its own engine, with no run
    directory (what `dcgan.train` runs, minus the files)."""
    return loop(engine_of(state), state, data, hooks or Hooks())


def save_checkpoint(state, run_dir, keep: int = 3) -> Path:
    """RUN_DIR/checkpoints/step_N.safetensors of the state, pruned to `keep`."""
    arrays, meta = engine_of(state).state_to_arrays(state)
    return rundir.save_step_checkpoint(run_dir, state.step, arrays, meta, keep=keep)


def tiny_config(**train) -> RunConfig:
    """A DCGAN small enough for a CPU test to take well under a second per few steps."""
    model = ModelConfig(
        kind="dcgan", image_size=28, channels=1, latent_dim=16, g_features=8, d_features=8
    )
    # the paper's learning rate, not the 28 px recipe's: the tests' bounds were set with it
    defaults = dict(batch_size=16, steps=12, log_every=4, sample_every=6, checkpoint_every=100)
    defaults |= dict(lr_g=2e-4, lr_d=2e-4)
    return RunConfig(
        model=model, data=DataConfig(), train=TrainConfig(**(defaults | train))
    ).validate()


@pytest.fixture
def cifar_dir() -> Path:
    if not CIFAR_DIR.is_dir():
        pytest.skip(f"real CIFAR-10 JPEGs not found at {CIFAR_DIR}")
    return CIFAR_DIR


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """A small folder of real-looking RGB pictures in class subfolders, plus one corrupt file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "pics"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(12):
            img = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
            Image.fromarray(img).save(folder / cls / f"{i}.png")
    (folder / "b" / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder
