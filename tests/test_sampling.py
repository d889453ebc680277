import numpy as np
import pytest
import torch

from conftest import fit, save_checkpoint, tiny_config
from dcgan.datasets import ImageSet, load_digits
from dcgan.errors import UsageError
from dcgan.latent_space import parse_arithmetic, slerp
from dcgan.rundir import Run
from dcgan.sampling import (
    arithmetic,
    interpolate,
    latents,
    load_sampler,
    nice,
    sample,
    score,
)
from dcgan.torch_engine import create_state, generate

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    config = tiny_config(steps=6, ema=True)
    run = Run.create(tmp_path_factory.mktemp("runs"), "r", config, "r")
    state = create_state(config, CPU)
    fit(state, ImageSet(load_digits().images[:200], "d"))
    save_checkpoint(state, run.path, keep=1)
    return run.path


def test_same_seed_same_images(run_dir):
    s = load_sampler(run_dir, CPU)
    assert s.step == 6
    a, b = sample(s, 10, seed=3), sample(s, 10, seed=3, batch_size=3)
    assert a.shape == (10, 1, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sample(s, 10, seed=4))


def test_uses_the_ema_generator(run_dir):
    from dcgan.checkpoint import read_checkpoint, subset
    from dcgan.rundir import find_checkpoint

    arrays, _ = read_checkpoint(find_checkpoint(run_dir))
    s = load_sampler(run_dir, CPU)
    ema = subset(arrays, "generator_ema")["main.0.weight"]
    assert np.array_equal(s.generator.main[0].weight.detach().numpy(), ema)
    assert not np.array_equal(ema, subset(arrays, "generator")["main.0.weight"])


def test_nice_keeps_the_best_scored(run_dir):
    s = load_sampler(run_dir, CPU)
    images, scores = nice(s, 5, 0.25, seed=1)
    assert images.shape[0] == 5 and np.all(np.diff(scores) <= 0)
    everything = score(s, sample(s, 20, seed=1))
    assert np.allclose(scores, np.sort(everything)[::-1][:5])


def test_interpolation_and_arithmetic(run_dir):
    s = load_sampler(run_dir, CPU)
    grid = interpolate(s, rows=2, steps=5, seed=0)
    assert grid.shape == (10, 1, 28, 28)
    ends = latents(2, 16, 0)
    path = slerp(ends[0], ends[1], torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], ends[0])
    torch.testing.assert_close(path[-1], ends[1])
    groups = parse_arithmetic(" 3, 7,12 - 5 9 +1,4")
    assert groups == ([3, 7, 12], [5, 9], [1, 4])
    images = arithmetic(s, groups, num=16, seed=2)
    assert images.shape == (12, 1, 28, 28)
    z = latents(16, 16, 2)
    expected = z[[3, 7, 12]].mean(0) - z[[5, 9]].mean(0) + z[[1, 4]].mean(0)
    assert np.array_equal(images[3], generate(s.generator, expected[None])[0])
    assert np.array_equal(images[0], generate(s.generator, z[[3, 7, 12]].mean(0)[None])[0])
    for bad in ("1,2 + 3", "1 - - 3", "a - b + c", "1 - 2 + "):
        with pytest.raises(UsageError, match="--arithmetic wants"):
            parse_arithmetic(bad)
    with pytest.raises(UsageError, match="not among the 16 samples"):
        arithmetic(s, ([16], [1], [2]), num=16, seed=2)


def test_channels_last_generation_matches_nchw(tmp_path):
    """The sampler runs NHWC (faster on CPU); the images and D's scores are those of
    the NCHW modules up to float rounding, and come back as contiguous NCHW arrays."""
    import dataclasses

    from dcgan.config import ModelConfig

    base = tiny_config(steps=2)
    model = ModelConfig(image_size=32, channels=3, latent_dim=16, g_features=8, d_features=8)
    config = dataclasses.replace(base, model=model)
    run = Run.create(tmp_path, "r32", config, "r32")
    state = create_state(config, CPU)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    fit(state, ImageSet(rgb, "noise"))
    save_checkpoint(state, run.path, keep=1)
    s = load_sampler(run.path, CPU)
    assert s.generator.main[0].weight.is_contiguous(memory_format=torch.channels_last)
    fast = sample(s, 24, seed=5)
    assert fast.flags["C_CONTIGUOUS"] and fast.shape == (24, 3, 32, 32)
    s.generator.to(memory_format=torch.contiguous_format)
    s.discriminator.to(memory_format=torch.contiguous_format)
    plain = sample(s, 24, seed=5)
    assert np.abs(fast.astype(int) - plain.astype(int)).max() <= 1
    assert (fast != plain).mean() < 1e-3


def test_latents_are_prefix_stable():
    """The first k latents of a seed do not depend on how many are drawn (torch's own randn is
    not: it redraws a ragged tail of 16 values)."""
    many = latents(700, 100, seed=4)
    for k in (1, 3, 10, 63, 64, 256, 257, 699):
        assert np.array_equal(latents(k, 100, seed=4), many[:k]), k
    assert np.array_equal(latents(5, 7, seed=4), latents(300, 7, seed=4)[:5])  # odd latent sizes
    # the documented, version-stable definition
    expected = np.random.default_rng(4).standard_normal((3, 100)).astype(np.float32)
    assert np.array_equal(latents(3, 100, seed=4), expected)
    assert not np.array_equal(latents(5, 100, seed=5), many[:5])
