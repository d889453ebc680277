"""The torch engine on CUDA. Skipped where there is no GPU (CI is CPU-only); run on a GPU machine
with `python -m pytest -m cuda` (bench/gpu_check.sh does, before the GPU benchmarks).

Correctness, not speed: a short run on the device learns like the same run on the CPU, and the
bf16 AMP step follows the fp32 loss curve within the run-to-run noise of a GAN.

DCGAN_TEST_DEVICE=cpu runs the same code on the CPU (DCGAN_TEST_STEPS=N shortens the learning
run): `DRY_RUN=1 bash bench/gpu_check.sh` does, so these tests are known to run before a GPU is
spent on them. Only a GPU says whether they pass there.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from conftest import fit
from dcgan.config import RunConfig, TrainConfig
from dcgan.datasets import load_digits
from dcgan.loop import Hooks
from dcgan.metrics import compute_metrics
from dcgan.sampling import latents
from dcgan.torch_engine import create_state, device_resident, generate

DEVICE = torch.device(os.environ.get("DCGAN_TEST_DEVICE", "cuda"))  # cpu: gpu_check's dry run
ON_CUDA = DEVICE.type == "cuda"
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(ON_CUDA and not torch.cuda.is_available(), reason="no CUDA device"),
]
STEPS = int(os.environ.get("DCGAN_TEST_STEPS", "600"))


def _run(precision: str, device: torch.device, data) -> tuple[np.ndarray, float]:
    config = RunConfig(
        train=TrainConfig(
            steps=STEPS,
            log_every=50,
            sample_every=10**9,
            checkpoint_every=10**9,
            precision=precision,
        )
    ).validate()
    state = create_state(config, device)
    logs: list[dict] = []
    fit(state, data, Hooks(on_log=logs.append))
    curve = np.array([[r["loss_d"], r["loss_g"]] for r in logs])
    images = generate(state.sampler, latents(2000, config.model.latent_dim, seed=7))
    return curve, compute_metrics(images, data, names=("digits",))["digits_fd"]


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_the_set_lives_on_the_gpu(digits):
    if not ON_CUDA:
        pytest.skip("a GPU question: on the CPU each batch is gathered from the host array")
    assert device_resident(digits.images.nbytes, DEVICE)
    assert not device_resident(10**15, DEVICE)  # a petabyte: gathered from the host instead


def test_cuda_fp32_and_bf16_learn_like_the_cpu(digits):
    cpu_curve, cpu_fd = _run("fp32", torch.device("cpu"), digits)
    curves, fds = {}, {}
    for precision in ("fp32", "bf16"):
        curves[precision], fds[precision] = _run(precision, DEVICE, digits)
        assert np.isfinite(curves[precision]).all()
    print(f"digits FD after {STEPS} steps: cpu {cpu_fd:.0f}, {DEVICE.type} {fds}")
    for precision, curve in curves.items():
        # the same recipe from the same seed: the window-averaged losses of the second half
        # agree within GAN noise (kernels differ, so the runs are not bit-identical)
        late = slice(len(curve) // 2, None)
        assert np.allclose(curve[late].mean(0), cpu_curve[late].mean(0), rtol=0.25), precision
        # and each learned digits (uniform noise scores ~1,640, the CPU run ~190 at 600 steps;
        # a dry run's few steps are too few for the absolute bound)
        assert fds[precision] < 2 * cpu_fd, precision
        assert fds[precision] < 400 or STEPS < 600, precision


def test_channels_last_bf16_step_keeps_fp32_weights(digits):
    config = RunConfig(train=TrainConfig(steps=3, precision="bf16")).validate()
    state = create_state(config, DEVICE)
    fit(state, dataclasses.replace(digits, images=np.asarray(digits.images[:256])))
    assert all(p.dtype == torch.float32 for p in state.generator.parameters())
    assert all(torch.isfinite(p).all() for p in state.discriminator.parameters())


def test_resume_on_the_gpu_and_across_devices(tmp_path, digits):
    # no device RNG state in checkpoints: a CPU checkpoint resumes on CUDA and the other way,
    # and a CUDA run resumes on CUDA; each continues to the configured step
    from conftest import run_dcgan

    dev = DEVICE.type
    small = ["--steps", "20", "--g-features", "8", "--d-features", "8", "--no-progress"]
    run_dcgan("train", *small, "--device", "cpu", "--name", "c", cwd=tmp_path)
    run_dcgan("train", "--resume", tmp_path / "runs" / "c", "--steps", "40", "--device", dev,
              cwd=tmp_path)  # fmt: skip
    run_dcgan("train", *small, "--device", dev, "--name", "g", cwd=tmp_path)
    run_dcgan("train", "--resume", tmp_path / "runs" / "g", "--steps", "40", "--device", dev,
              cwd=tmp_path)  # fmt: skip
    run_dcgan("train", "--resume", tmp_path / "runs" / "g", "--steps", "60", "--device", "cpu",
              cwd=tmp_path)  # fmt: skip
    from dcgan.checkpoint import read_meta
    from dcgan.rundir import list_checkpoints

    assert read_meta(list_checkpoints(tmp_path / "runs" / "c")[-1])["step"] == 40
    assert read_meta(list_checkpoints(tmp_path / "runs" / "g")[-1])["step"] == 60


@pytest.mark.skipif(ON_CUDA and torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_train_the_model_one_gpu_trains(tmp_path):
    # NCCL and torch's SyncBatchNorm: 2 GPUs with the global batch match 1 GPU (float order);
    # on the CPU (the dry run) gloo and GlobalBatchNorm, as tests/test_distributed.py checks
    from conftest import run_dcgan
    from test_distributed import ONE, TINY, _max_diff, _torchrun, _weights

    dev = DEVICE.type
    # ONE: a fixed thread count, as the CPU references there (the CPU threads of a GPU run
    # change nothing on the device)
    run_dcgan("train", *TINY, *ONE, "--steps", "20", "--device", dev, "--name", "one",
              cwd=tmp_path)  # fmt: skip
    _torchrun("train", *TINY, "--steps", "20", "--device", dev, "--name", "two", cwd=tmp_path)
    runs = tmp_path / "runs"
    assert _max_diff(_weights(runs / "one"), _weights(runs / "two")) < 1e-3  # TF32/cuDNN order
