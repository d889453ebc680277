"""Runs written by an older dcgan still load, draw the same images and resume the same way.

tests/fixtures/legacy_0a7b59e/ was made with the code of commit 0a7b59e, before the core
redesign of issue 23, by tests/fixtures/legacy_0a7b59e/regenerate.py (its README.md lists the
exact commands). It holds:

- run/: a 40-step run directory as 0a7b59e wrote it (`dcgan train --latent-dim 16 --g-features 8
  --d-features 8 --batch-size 16 --steps 40 --checkpoint-every 20 --keep 1 --threads 1
  --precision fp32 --seed 3 --ema ...` on the bundled digits): config.json, info.json,
  stats.jsonl, checkpoints/step_000000040.safetensors and generator/ (model.safetensors,
  config.json). Sample grids, progress.gif and real_samples.png are left out.
- expected/: what 0a7b59e made of it. The images of `dcgan generate --num 8 --seed 5` from the
  run, from run/generator and with `--nice 0.5` (uint8 arrays read back from the PNGs), the
  latents of seed 5, and after `dcgan train --resume COPY --steps 60 --threads 1`: the sha256 of
  every tensor of checkpoints/step_000000060.safetensors and of generator/model.safetensors,
  the losses logged at steps 50 and 60, and the images of `generate COPY` and
  `generate COPY/generator`.

Everything goes through the CLI (`python -m dcgan`), never through module paths, which the
redesign moves. Each test works on a copy of run/ under tmp_path: resume writes into a run.

At 0a7b59e all of it is bit-reproducible on a CPU: two trainings and two resumes gave the same
tensors, a resumed 40+20 run equals a straight 60-step one, and generate gives the same PNGs
every time. So on the platform that recorded it (expected/platform.json: torch version and
torch's CPU capability) everything is compared exactly. On another CPU kind or torch version
the float arithmetic may round differently (oneDNN picks kernels per ISA), so there the images
are compared within one grey level (two after resuming, where 20 training steps amplify
rounding) and the bit-exact checks of the resumed tensors and losses are skipped, saying why.
The latents (NumPy's generator) are compared exactly everywhere.

If this fails after a change, the change broke old users' runs: fix the code, never regenerate
this fixture with the new code.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_dcgan

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy_0a7b59e"
EXPECTED = FIXTURE / "expected"
GENERATE = ["--num", "8", "--seed", "5", "--device", "cpu"]
CKPT_60 = "checkpoints/step_000000060.safetensors"


def recorded_platform() -> bool:
    """True on the torch version and CPU kind that recorded expected/: bit-exact expected."""
    rec = json.loads((EXPECTED / "platform.json").read_text())
    try:
        import torch
    except ImportError:
        return False
    return (
        torch.__version__ == rec["torch"]
        and torch.backends.cpu.get_cpu_capability() == rec["torch_cpu_capability"]
        and platform.machine() == rec["machine"]
    )


EXACT = recorded_platform()
NOT_EXACT_REASON = (
    "bit-exact values hold only on the recording platform "
    f"({(EXPECTED / 'platform.json').read_text().strip()})"
)


def dcgan(tmp: Path, *args) -> subprocess.CompletedProcess:
    return run_dcgan(*args, cwd=tmp)


def copy_run(tmp: Path) -> Path:
    run = tmp / "legacy_run"
    shutil.copytree(FIXTURE / "run", run)
    return run


def generated(tmp: Path, source: Path, name: str, *extra) -> np.ndarray:
    out = tmp / name
    dcgan(tmp, "generate", source, *GENERATE, *extra, "--out", out)
    files = sorted(out.glob("[0-9]*.png"))
    return np.stack([np.asarray(Image.open(f)) for f in files])


def assert_images(got: np.ndarray, name: str, tolerance: int = 1) -> None:
    want = np.load(EXPECTED / f"{name}.npy")
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype)
    diff = np.abs(got.astype(int) - want.astype(int))
    if EXACT:
        assert not diff.any(), f"{name}: {np.count_nonzero(diff)} pixels differ, max {diff.max()}"
    else:
        assert diff.max() <= tolerance, f"{name}: max difference {diff.max()} grey levels"


def digests(path: Path) -> dict:
    from safetensors.numpy import load_file

    return {
        k: [
            str(v.dtype),
            list(v.shape),
            hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest(),
        ]
        for k, v in sorted(load_file(path).items())
    }


def assert_same_tensors(got: dict, want: dict, what: str) -> None:
    if got == want:
        return
    changed = sorted(k for k in want.keys() & got.keys() if got[k] != want[k])
    renamed_only = sorted(map(json.dumps, got.values())) == sorted(map(json.dumps, want.values()))
    raise AssertionError(
        f"{what}: missing {sorted(want.keys() - got.keys())}, new {sorted(got.keys() - want.keys())}, "
        f"different values {changed}"
        + (" (same values, only the names changed)" if renamed_only else "")
    )


def test_generate_from_legacy_run_dir(tmp_path):
    run = copy_run(tmp_path)
    images = generated(tmp_path, run, "generate_run", "--save-latents", tmp_path / "z.npy")
    np.testing.assert_array_equal(
        np.load(tmp_path / "z.npy"), np.load(EXPECTED / "latents_seed5.npy")
    )
    assert_images(images, "generate_run")
    info = json.loads((tmp_path / "generate_run" / "generate.json").read_text())
    assert info["step"] == 40


def test_generate_from_legacy_generator_folder(tmp_path):
    run = copy_run(tmp_path)
    assert_images(
        generated(tmp_path, run / "generator", "generate_generator"), "generate_generator"
    )


def test_generate_nice_from_legacy_run_dir(tmp_path):
    run = copy_run(tmp_path)
    assert_images(generated(tmp_path, run, "generate_nice", "--nice", "0.5"), "generate_nice")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> Path:
    """A copy of the legacy run, resumed from step 40 to step 60 by the current code."""
    tmp = tmp_path_factory.mktemp("resume")
    run = copy_run(tmp)
    dcgan(tmp, "train", "--resume", run, "--steps", "60", "--threads", "1", "--device", "cpu",
          "--no-report", "--no-progress")  # fmt: skip
    return run


def test_resume_legacy_run_reaches_step_60(resumed):
    assert (resumed / CKPT_60).is_file(), sorted(
        p.name for p in (resumed / "checkpoints").iterdir()
    )
    gen = json.loads((resumed / "generator" / "config.json").read_text())
    assert gen["step"] == 60


@pytest.mark.skipif(not EXACT, reason=NOT_EXACT_REASON)
def test_resume_legacy_run_same_tensors(resumed):
    want = json.loads((EXPECTED / "resume60.json").read_text())
    assert_same_tensors(digests(resumed / CKPT_60), want["tensors"], CKPT_60)
    assert_same_tensors(
        digests(resumed / "generator" / "model.safetensors"),
        want["generator_tensors"],
        "generator/model.safetensors",
    )


@pytest.mark.skipif(not EXACT, reason=NOT_EXACT_REASON)
def test_resume_legacy_run_same_losses(resumed):
    want = json.loads((EXPECTED / "resume60.json").read_text())["stats_after_40"]
    stats = [json.loads(line) for line in (resumed / "stats.jsonl").read_text().splitlines()]
    got = [{k: s[k] for k in want[0]} for s in stats if s["step"] > 40]
    assert got == want


def test_resume_legacy_run_same_images(resumed, tmp_path):
    assert_images(generated(tmp_path, resumed, "resume60_generate_run"), "resume60_generate_run", 2)
    assert_images(
        generated(tmp_path, resumed / "generator", "resume60_generate_generator"),
        "resume60_generate_generator",
        2,
    )
