"""The two engines on each other's checkpoints: same images from one checkpoint, and resuming
training across engines (weights and Adam state carry over; the z streams differ by design)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from conftest import fit, run_dcgan, save_checkpoint, tiny_config  # noqa: E402
from dcgan import sampling  # noqa: E402
from dcgan import torch_engine as torch_train  # noqa: E402
from dcgan.checkpoint import read_checkpoint  # noqa: E402
from dcgan.config import ModelConfig  # noqa: E402
from dcgan.datasets import ImageSet, load_digits  # noqa: E402
from dcgan.loop import Hooks  # noqa: E402
from dcgan.numpy_engine import train as np_train  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # tiny models: torch's thread pool only adds spin-waits on a busy 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return ImageSet(images=load_digits().images[:400], name="digits400")


@pytest.mark.parametrize("n, dim, seed", [(64, 100, 0), (3, 7, 5), (1, 17, 2), (2, 5, 1)])
def test_engines_draw_the_same_latents(n, dim, seed):
    # one generator (draw.latents) for both engines: sampling hands each engine the same host
    # float32 array, so their latents are bit-identical, not merely close
    from dcgan import draw

    z = sampling.latents(n, dim, seed)
    assert z.dtype == np.float32 and np.array_equal(z, draw.latents(n, dim, seed))


def _torch_run(tmp_path, config, data, steps: int):
    state = torch_train.create_state(config, CPU)
    fit(state, data)
    assert state.step == steps
    return save_checkpoint(state, tmp_path, keep=2)


@pytest.mark.parametrize(
    "model",
    [
        ModelConfig(image_size=28, channels=1, latent_dim=16, g_features=8, d_features=8),
        ModelConfig(image_size=64, channels=3, latent_dim=32, g_features=8, d_features=8),
        ModelConfig(kind="mlp", image_size=28, channels=1, latent_dim=16, g_features=8),
    ],
    ids=["dcgan28", "dcgan64-rgb", "mlp28"],
)
def test_torch_checkpoint_generates_the_same_images_in_numpy(tmp_path, digits, model):
    config = dataclasses.replace(tiny_config(steps=8, ema=True), model=model)
    images = np.repeat(
        load_digits(model.image_size).images[:200], model.channels, axis=1
    )  # digits at the model's size and channels
    path = _torch_run(tmp_path, config, ImageSet(images=images, name="d"), 8)

    ours = sampling.load_sampler(path, "cpu", engine="numpy")
    theirs = sampling.load_sampler(path, CPU, engine="torch")
    a = sampling.sample(ours, 64, seed=3)
    b = sampling.sample(theirs, 64, seed=3)
    diff = np.abs(a.astype(int) - b.astype(int))
    # float32 in both engines with different summation orders, latents equal to ~2e-6: a pixel
    # on a rounding boundary may move one level. Measured: identical at 28 px, one pixel in ~3
    # million off by one level for the default 64 px net; the bound leaves a wide margin
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.005
    # D ranks the same candidates ("nice" mode): its logits agree closely
    scores_np = sampling.score(ours, b)
    scores_torch = sampling.score(theirs, b)
    np.testing.assert_allclose(scores_np, scores_torch, rtol=1e-3, atol=1e-4)


def _assert_same_weights(arrays_a, arrays_b, prefixes=("generator.", "discriminator.", "opt_")):
    keys = [k for k in arrays_a if k.startswith(prefixes)]
    assert keys and set(keys) == {k for k in arrays_b if k.startswith(prefixes)}
    for key in keys:
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)


def test_numpy_checkpoint_resumes_in_torch_and_back(tmp_path, digits):
    config = tiny_config(steps=4, ema=True, loss="lsgan")
    state = np_train.create_state(config)
    fit(state, digits)
    path = save_checkpoint(state, tmp_path / "a", keep=2)
    saved, _ = read_checkpoint(path)

    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=8))
    resumed = torch_train.load_state(path, CPU, longer)
    assert resumed.step == 4
    arrays, meta = torch_train.state_to_arrays(resumed)
    _assert_same_weights(saved, arrays)  # weights, BN statistics and Adam moments carry over
    assert set(meta["optimizers"]["opt_g"]["steps"].values()) == {4.0}
    logs = []
    fit(resumed, digits, Hooks(on_log=logs.append))
    assert resumed.step == 8 and logs and all(np.isfinite(r["loss_d"]) for r in logs)

    # and back: the torch engine's checkpoint continues in the numpy engine
    path = save_checkpoint(resumed, tmp_path / "b", keep=2)
    saved, _ = read_checkpoint(path)
    again = np_train.load_state(
        path, "cpu", dataclasses.replace(longer, train=dataclasses.replace(longer.train, steps=12))
    )
    _assert_same_weights(saved, np_train.state_to_arrays(again)[0])
    assert again.opt_g.step_count == 8
    fit(again, digits)
    assert again.step == 12


def test_torch_resumes_deterministically_from_numpy(tmp_path, digits):
    # the torch noise is reseeded from (seed, step): two resumes of one file agree bit for bit
    state = np_train.create_state(tiny_config(steps=3))
    fit(state, digits)
    path = save_checkpoint(state, tmp_path, keep=1)
    longer = tiny_config(steps=5)
    results = []
    for _ in range(2):
        resumed = torch_train.load_state(path, CPU, longer)
        fit(resumed, digits)
        results.append(torch_train.state_to_arrays(resumed)[0])
    _assert_same_weights(*results)


def test_cli_switches_engines(tmp_path):
    tiny = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16", "--batch-size", "16"]
    run_dcgan("train", "--steps", 4, "--name", "r", "--no-progress", *tiny, cwd=tmp_path)
    run = tmp_path / "runs" / "r"
    grids = {}
    for engine in ("torch", "numpy"):
        out = tmp_path / engine
        run_dcgan(
            "generate", run, "--engine", engine, "--num", 16, "--grid", "--out", out, cwd=tmp_path
        )
        grids[engine] = np.asarray(Image.open(out / "grid.png")).astype(int)
    assert np.abs(grids["torch"] - grids["numpy"]).max() <= 1

    run_dcgan(
        "train", "--resume", run, "--engine", "numpy", "--steps", 6, "--no-progress", cwd=tmp_path
    )
    assert '"engine": "numpy"' in (run / "config.json").read_text()
    run_dcgan("train", "--resume", run, "--steps", 8, "--no-progress", cwd=tmp_path)  # stays numpy
    run_dcgan(
        "train", "--resume", run, "--engine", "torch", "--steps", 10, "--no-progress", cwd=tmp_path
    )
    assert '"engine": "torch"' in (run / "config.json").read_text()
    steps = [r["step"] for r in map(json.loads, (run / "stats.jsonl").open())]
    assert steps == sorted(steps) and steps[-1] == 10
    _, meta = read_checkpoint(sorted((run / "checkpoints").iterdir())[-1])
    assert meta["step"] == 10 and meta["config"]["train"]["engine"] == "torch"
