"""Sliced Wasserstein distance: zero on identical sets, growing with noise; pyramid levels."""

import numpy as np
import pytest

from dcgan.datasets import load_digits
from dcgan.metrics.swd import _blur, descriptors, laplacian_pyramid, pyramid_sides, swd


@pytest.fixture(scope="module")
def digits():
    images = load_digits().images
    idx = np.random.default_rng(0).permutation(len(images))
    return images[idx[:300]], images[idx[300:600]]


def test_pyramid_sides():
    assert pyramid_sides(28) == [28, 14]
    assert pyramid_sides(32) == [32, 16]
    assert pyramid_sides(64) == [64, 32, 16]
    with pytest.raises(ValueError):
        pyramid_sides(8)


def test_laplacian_pyramid_reconstructs_the_image():
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32)).astype(np.float32)
    fine, coarse = laplacian_pyramid(x.astype(np.uint8), 2)
    up = np.zeros_like(fine)
    up[..., ::2, ::2] = coarse
    np.testing.assert_allclose(fine + 4 * _blur(up), x, atol=1e-3)


def test_descriptors_are_normalised_per_channel():
    x = np.random.default_rng(1).integers(0, 256, (20, 3, 28, 28), dtype=np.uint8)
    d = descriptors(x, per_image=16)
    assert sorted(d) == [14, 28]
    assert d[28].shape == (20 * 16, 3 * 49)
    per_channel = d[28].reshape(-1, 3, 49)
    np.testing.assert_allclose(per_channel.mean(axis=(0, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(per_channel.std(axis=(0, 2)), 1, atol=1e-3)


def test_identical_sets_give_zero(digits):
    a, _ = digits
    result = swd(a, a)
    assert set(result) == {"swd", "swd_28", "swd_14"}
    assert result["swd"] == 0.0


def test_grows_with_noise(digits):
    a, b = digits
    rng = np.random.default_rng(2)
    values = [swd(a, b)["swd"]]
    for sigma in (20, 60):
        noisy = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        values.append(swd(noisy, b)["swd"])
    assert values[0] < values[1] < values[2]


def test_sets_of_different_sizes(digits):
    a, b = digits
    assert np.isfinite(swd(a[:100], b)["swd"])
