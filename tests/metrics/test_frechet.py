"""Frechet distance against closed forms and scipy, streaming statistics, and KID's bias."""

import numpy as np
import pytest
import scipy.linalg

from dcgan.metrics.frechet import (
    FeatureStats,
    _mmd2_unbiased,
    frechet_distance,
    kernel_distance,
    trace_sqrt_product,
)


def random_spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d + (0 if rank else 1e-3 * np.eye(d))


def test_closed_form_for_diagonal_gaussians():
    # commuting covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_identical_and_scalar_cases():
    rng = np.random.default_rng(1)
    s = random_spd(rng, 16)
    mu = rng.standard_normal(16)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0, abs=1e-9)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_matches_direct_scipy_sqrtm():
    rng = np.random.default_rng(2)
    for d in (3, 20, 64):
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        direct = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-8)


def test_finite_on_rank_deficient_covariances():
    rng = np.random.default_rng(3)
    # 10 samples in 64-d: covariances of rank 9, as FID on too few images gives
    f1, f2 = rng.standard_normal((10, 64)), rng.standard_normal((10, 64)) + 0.5
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    d = frechet_distance(f1.mean(0), s1, f2.mean(0), s2)
    assert np.isfinite(d) and d > 0
    assert np.isfinite(trace_sqrt_product(s1, s1))
    # clipped zero eigenvalues (~1e-15) contribute ~sqrt(1e-15) each, hence rel 1e-6
    assert trace_sqrt_product(s1, s1) == pytest.approx(np.trace(s1), rel=1e-6)
    zero = np.zeros((64, 64))
    assert frechet_distance(f1.mean(0), zero, f1.mean(0), zero) == 0.0


def test_streaming_stats_match_numpy_in_any_batching():
    rng = np.random.default_rng(4)
    # a large offset: the naive sum-of-squares formula would lose most digits here
    x = rng.standard_normal((1000, 5)) * 0.01 + 1e6
    stats = FeatureStats(5)
    for lo, hi in [(0, 1), (1, 18), (18, 400), (400, 1000)]:
        stats.update(x[lo:hi])
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-6, atol=1e-12)
    again = FeatureStats.from_moments(stats.mean, stats.cov, stats.count)
    np.testing.assert_allclose(again.cov, stats.cov)


def test_mmd2_unbiased_matches_definition():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    kxx, kyy, kxy = (x @ x.T / 3 + 1) ** 3, (y @ y.T / 3 + 1) ** 3, (x @ y.T / 3 + 1) ** 3
    assert _mmd2_unbiased(kxx, kxy, kyy) == pytest.approx(xx + yy - 2 * xy)


def test_kid_is_unbiased_on_one_distribution_and_positive_on_two():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((1000, 16)), rng.standard_normal((1000, 16))
    same, same_std = kernel_distance(a, b, subsets=100, subset_size=200, seed=0)
    # unbiased: the mean over subsets sits at 0 within its standard error
    assert abs(same) < 3 * same_std / np.sqrt(100) + 1e-4
    shifted, _ = kernel_distance(a, b + 0.3, subsets=20, subset_size=200, seed=0)
    assert shifted > 20 * abs(same)
    # subsets larger than a set are reduced to fit
    assert np.isfinite(kernel_distance(a[:50], b[:80], subsets=3)[0])
