"""Streaming feature statistics (float64 mean and covariance), the Frechet distance and KID.

Feature-space agnostic: Inception, the digit classifier or anything else yields (N, D) arrays.
The trace term comes from eigenvalues, never `scipy.linalg.sqrtm`, so it is real and finite.
"""

from __future__ import annotations

import numpy as np


class FeatureStats:
    """Running mean and covariance of (B, D) feature batches, merged in float64 (Chan et al.).

    Merging per-batch centred moments avoids the cancellation of the naive sum-of-squares formula,
    so a million features give the same covariance as `np.cov` on all of them at once.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self._mean = np.zeros(dim, np.float64)
        self._m2 = np.zeros((dim, dim), np.float64)  # sum of outer products of centred features

    def update(self, features: np.ndarray) -> None:
        """Add a batch of features, shape (B, dim), any float dtype."""
        x = np.asarray(features, np.float64).reshape(len(features), -1)
        if x.shape[1] != self.dim:
            raise ValueError(f"features have dimension {x.shape[1]}, expected {self.dim}")
        n_b = len(x)
        if n_b == 0:
            return
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        n = self.count + n_b
        delta = mean_b - self._mean
        self._mean += delta * (n_b / n)
        self._m2 += m2_b + np.outer(delta, delta) * (self.count * n_b / n)
        self.count = n

    @property
    def mean(self) -> np.ndarray:
        """(dim,) float64."""
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """(dim, dim) float64 unbiased covariance (ddof=1, as `np.cov`); needs two samples."""
        if self.count < 2:
            raise ValueError(f"covariance needs at least 2 samples, got {self.count}")
        return self._m2 / (self.count - 1)

    @classmethod
    def from_moments(cls, mean: np.ndarray, cov: np.ndarray, count: int) -> FeatureStats:
        """Rebuild from a stored mean (D,), covariance (D, D) and sample count."""
        stats = cls(len(mean))
        stats._mean = np.asarray(mean, np.float64).copy()
        stats._m2 = np.asarray(cov, np.float64) * (count - 1)
        stats.count = int(count)
        return stats

    @classmethod
    def of(cls, features: np.ndarray, batch: int = 4096) -> FeatureStats:
        """Statistics of a whole (N, D) array, folded in batches to bound memory."""
        stats = cls(features.shape[1])
        for i in range(0, len(features), batch):
            stats.update(features[i : i + batch])
        return stats


def _sym_sqrt(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; tiny negative eigenvalues from
    rounding are clipped to 0."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr(sqrt(sigma1 @ sigma2)) for covariances (D, D).

    sigma1 @ sigma2 is similar to the symmetric PSD matrix s @ sigma2 @ s with s = sqrt(sigma1),
    so its eigenvalues are real and >= 0: eigvalsh of the symmetric form, clipped, then sqrt.
    Unlike sqrtm this never yields an imaginary part and stays finite for singular covariances.
    """
    s = _sym_sqrt(np.asarray(sigma1, np.float64))
    m = s @ np.asarray(sigma2, np.float64) @ s
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2): means (D,), covariances (D, D).

    d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrt(sigma1 sigma2)), computed in float64.
    Returns a float >= 0 (tiny negative rounding is clipped).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"mismatched statistics: {mu1.shape}/{sigma1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    d = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(d), 0.0)


def frechet_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def _mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD^2 from kernel matrices (m, m): diagonals of k_xx and k_yy dropped."""
    m = len(k_xx)
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kernel_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: (mean, std) of unbiased MMD^2 over random subsets, features (N1, D) and (N2, D).

    The kernel is k(x, y) = (x.y / D + coef0)^degree, and each of `subsets` draws `subset_size`
    rows without replacement from each set, as Binkowski et al. and torch-fidelity do (their
    defaults: 100 subsets of 1000). A subset size larger than either set is reduced to fit.
    """
    # dot products in float32 (as torch-fidelity; twice as fast), kernels and sums in float64
    x_all = np.asarray(features1, np.float32)
    y_all = np.asarray(features2, np.float32)
    m = min(subset_size, len(x_all), len(y_all))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(x_all)}, {len(y_all)}")
    gamma = 1.0 / x_all.shape[1]
    rng = np.random.default_rng(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        k_xx = ((x @ x.T).astype(np.float64) * gamma + coef0) ** degree
        k_yy = ((y @ y.T).astype(np.float64) * gamma + coef0) ** degree
        k_xy = ((x @ y.T).astype(np.float64) * gamma + coef0) ** degree
        mmds[i] = _mmd2_unbiased(k_xx, k_xy, k_yy)
    return float(mmds.mean()), float(mmds.std())
