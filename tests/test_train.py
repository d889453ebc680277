import numpy as np
import pytest
import torch

from conftest import fit, save_checkpoint, tiny_config
from dcgan.datasets import ImageSet, load_digits
from dcgan.loop import Hooks
from dcgan.torch_engine import (
    create_state,
    load_state,
    state_to_arrays,
    update_ema,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    full = load_digits()
    return ImageSet(images=full.images[:400], name="digits400")


def _arrays(state):
    arrays, meta = state_to_arrays(state)
    return arrays, {k: v for k, v in meta.items() if k not in ("elapsed", "extra")}


@pytest.mark.parametrize(
    "options",
    [dict(), dict(ema=True, loss="lsgan"), dict(loss="wgan-gp", n_critic=2), dict(loss="hinge")],
)
def test_resume_is_exact(tmp_path, digits, options):
    _assert_exact_resume(tmp_path, tiny_config(steps=10, **options), digits)


def test_resume_is_exact_on_a_memory_mapped_set(tmp_path, digits):
    """A prepared folder is read back as a read-only memmap; batches gathered from it resume
    bit for bit like an in-memory set (with an epoch boundary inside the run)."""
    from PIL import Image

    from dcgan.folders import load_folder

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(np.asarray(digits.images[:40])):
        Image.fromarray(image[0]).save(folder / f"{i:03d}.png")
    prepared = load_folder(folder, 28, cache_dir=tmp_path / "cache", workers=1)
    prepared = load_folder(folder, 28, cache_dir=tmp_path / "cache")  # the cached copy
    assert prepared.from_cache and isinstance(prepared.images, np.memmap)
    assert np.array_equal(np.asarray(prepared.images), np.asarray(digits.images[:40]))
    _assert_exact_resume(tmp_path, tiny_config(steps=8, ema=True), prepared)  # 2 per epoch


def _assert_exact_resume(tmp_path, config, data) -> None:
    """N steps in one go == N/2 steps, a checkpoint, a fresh process state and N/2 more."""
    whole = create_state(config, CPU)
    fit(whole, data)

    half = create_state(
        config.__class__(
            model=config.model,
            data=config.data,
            train=config.train.__class__(
                **{**config.train.__dict__, "steps": config.train.steps // 2}
            ),
        ),
        CPU,
    )
    fit(half, data)
    path = save_checkpoint(half, tmp_path, keep=2)
    del half
    torch.manual_seed(1234)  # whatever happened in between must not matter
    np.random.seed(99)
    resumed = load_state(path, CPU, config)
    assert resumed.step == config.train.steps // 2
    fit(resumed, data)

    a, meta_a = _arrays(whole)
    b, meta_b = _arrays(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key  # bit for bit
    assert meta_a == meta_b


def test_training_changes_both_nets_and_logs(digits):
    state = create_state(tiny_config(steps=8), CPU)
    before = {k: v.clone() for k, v in state.generator.state_dict().items()}
    d_before = state.discriminator.main[0].weight.clone()
    logs, grids = [], []
    fit(
        state,
        digits,
        Hooks(on_log=logs.append, on_samples=lambda s, im: grids.append((s, im.shape))),
    )
    assert not torch.equal(before["main.0.weight"], state.generator.main[0].weight)
    assert not torch.equal(d_before, state.discriminator.main[0].weight)
    assert [r["step"] for r in logs] == [4, 8]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "img_per_s", "wall_time", "epoch"} <= logs[
        0
    ].keys()
    assert all(np.isfinite(r["loss_d"]) for r in logs)
    assert (6, (64, 1, 28, 28)) in grids and grids[-1][0] == 8


def test_stop_request_ends_the_loop(digits):
    state = create_state(tiny_config(steps=100), CPU)
    calls = iter(range(1000))
    assert fit(state, digits, Hooks(should_stop=lambda: next(calls) >= 3)) == "stopped"
    assert state.step == 3


def test_ema_update():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    old = a.weight.clone()
    update_ema(a, b, 0.9)
    torch.testing.assert_close(a.weight, 0.9 * old + 0.1 * b.weight)


def test_ema_warms_up_then_holds_its_decay():
    from dcgan.loop import ema_decay

    assert ema_decay(0, 0.999) == pytest.approx(0.1)  # the first update nearly copies G
    assert ema_decay(90, 0.999) == pytest.approx(0.91)
    assert ema_decay(10**6, 0.999) == 0.999
    assert ema_decay(10**6, 0.99) == 0.99
    steps = range(0, 20_000, 7)
    assert all(ema_decay(a, 0.999) <= ema_decay(b, 0.999) for a, b in zip(steps, steps[1:]))


def test_a_set_is_copied_to_the_device_in_blocks(tmp_path):
    from dcgan.torch_engine import copy_to_device, device_resident

    images = np.lib.format.open_memmap(
        tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(21, 1, 4, 4)
    )
    images[:] = np.arange(21 * 16, dtype=np.uint32).reshape(21, 1, 4, 4) % 251
    images.flush()
    readonly = np.load(tmp_path / "x.npy", mmap_mode="r")
    copied = copy_to_device(readonly, CPU, block=8)  # 8 + 8 + 5 images
    assert copied.dtype == torch.uint8 and np.array_equal(copied.numpy(), readonly)
    assert not device_resident(10, CPU)  # on the CPU batches come from the host array
