"""The shipped digit classifier and its metrics on the bundled digits: floor < blur < noise."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcgan.datasets import load_digits, load_digits_raw
from dcgan.metrics import digits as dm
from dcgan.metrics.frechet import FeatureStats


@pytest.fixture(scope="module")
def halves():
    images = load_digits().images
    idx = np.random.default_rng(0).permutation(len(images))
    return images[idx[:2000]], images[idx[2000:4000]]


def blur(images: np.ndarray) -> np.ndarray:
    k = torch.tensor([1.0, 4, 6, 4, 1])
    k = (k[:, None] * k[None]) / 256
    x = F.conv2d(torch.from_numpy(images).float(), k[None, None], padding=2)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def test_weights_are_small_and_accurate_on_held_out_digits():
    assert len(dm.weights_bytes()) < 1_000_000
    images, labels = load_digits_raw()
    held = np.random.default_rng(0).permutation(len(images))[8000:]  # the training script's split
    _, probs = dm.classify(images[held][:, None])
    assert (probs.argmax(1) == labels[held]).mean() > 0.97


def test_input_conversion_handles_rgb_and_32px():
    gray = load_digits(28).images[:8]
    x28 = dm.to_classifier_input(gray)
    assert x28.shape == (8, 1, 28, 28) and x28.min() >= -1 and x28.max() <= 1
    torch.testing.assert_close(dm.to_classifier_input(np.repeat(gray, 3, axis=1)), x28)
    torch.testing.assert_close(dm.to_classifier_input(load_digits(32).images[:8]), x28)
    assert dm.to_classifier_input(load_digits(64).images[:2]).shape == (2, 1, 28, 28)


def test_class_metrics_on_extreme_histograms():
    one_class = np.tile(np.eye(10)[3], (50, 1))
    m = dm.class_metrics(one_class)
    assert m["digits_coverage"] == 1 and m["digits_confident"] == 1
    assert m["digits_kl"] == pytest.approx(np.log(10))
    uniform = np.tile(np.eye(10), (5, 1)) * 0.5 + 0.05
    m = dm.class_metrics(uniform)
    assert m["digits_coverage"] == 10 and m["digits_kl"] == pytest.approx(0)
    assert m["digits_confident"] == 0


def test_real_halves_sit_at_the_floor_blur_between_noise_far(halves):
    a, b = halves
    ref = FeatureStats.of(dm.classify(b)[0])
    real = dm.digits_metrics(a, ref)
    blurred = dm.digits_metrics(blur(a), ref)
    noise = np.random.default_rng(1).integers(0, 256, a.shape, dtype=np.uint8)
    noisy = dm.digits_metrics(noise, ref)
    assert real["digits_fd"] < blurred["digits_fd"] < noisy["digits_fd"]
    assert 3 * real["digits_fd"] < blurred["digits_fd"]
    assert real["digits_coverage"] == 10 and real["digits_kl"] < 0.02
    assert real["digits_confident"] > 0.9
    assert noisy["digits_kl"] > 1.0 and noisy["digits_coverage"] <= 3
