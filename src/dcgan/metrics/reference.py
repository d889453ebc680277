"""Reference (real-image) feature statistics, computed once and cached under the dcgan cache dir.

A cache entry is keyed by everything that changes it: the images' content fingerprint (which
covers dataset, split, resolution and channels), the extractor and its weights, the count and
the subset seed. It is a safetensors file (mean, covariance, optional features) plus JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from ..datasets import default_cache_dir
from ..files import atomic_write, slug
from .frechet import FeatureStats

REFERENCE_VERSION = 1


@dataclass
class Reference:
    """Statistics of the real images in one feature space; `features` (N, D) float32 is kept only
    when asked for (KID needs samples, not moments)."""

    stats: FeatureStats
    features: np.ndarray | None
    meta: dict
    from_cache: bool = False


def images_fingerprint(images: np.ndarray) -> str:
    """sha256 (16 hex) of a uint8 array's shape and bytes: same pixels, same fingerprint."""
    h = hashlib.sha256(f"{images.dtype}{images.shape}".encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()[:16]


def subset(images: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    """The first-`count` of a seeded permutation (in original order), or all when count is None
    or >= N."""
    if count is None or count >= len(images):
        return images
    idx = np.sort(np.random.default_rng(seed).permutation(len(images))[:count])
    return images[idx]


def reference_dir(cache_dir: Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "metrics" / "reference"


def reference_stats(
    images: np.ndarray,
    extractor: str,
    extract: Callable[[np.ndarray], np.ndarray],
    *,
    dataset: str = "images",
    split: str = "all",
    keep_features: bool = False,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    extra_key: dict | None = None,
) -> Reference:
    """Feature statistics of uint8 real images (N, C, H, W), from the cache or computed.

    `extract` maps uint8 images to features (N, D); `extractor` names it and its weights (e.g.
    "digits-1a2b3c4d", "inception-6726825d"). `dataset`/`split` are labels in the file name and
    JSON; correctness rests on the content fingerprint. `extra_key` adds anything else that
    changes the result (e.g. the subset seed).
    """
    key = {
        "version": REFERENCE_VERSION,
        "dataset": dataset,
        "split": split,
        "shape": list(images.shape[1:]),
        "count": len(images),
        "extractor": extractor,
        "fingerprint": images_fingerprint(images),
        "keep_features": keep_features,
        **(extra_key or {}),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = slug(f"{dataset}-{split}")
    base = reference_dir(cache_dir) / f"{name}-{images.shape[-1]}px-{extractor}-{digest}"
    if use_cache:
        cached = _read(base, key)
        if cached is not None:
            return cached
    features = extract(images)
    ref = Reference(FeatureStats.of(features), features if keep_features else None, key)
    if use_cache:
        _write(base, ref)
    return ref


def _read(base: Path, key: dict) -> Reference | None:
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
        arrays = load_file(str(base.with_suffix(".safetensors")))
    except (OSError, ValueError, SafetensorError):
        return None
    if meta.get("key") != key:
        return None
    stats = FeatureStats.from_moments(arrays["mean"], arrays["cov"], meta["count"])
    return Reference(stats, arrays.get("features"), key, from_cache=True)


def _write(base: Path, ref: Reference) -> None:
    """Tensors first, JSON last: an entry without its JSON is never read."""
    arrays = {"mean": ref.stats.mean, "cov": ref.stats.cov}
    if ref.features is not None:
        arrays["features"] = np.ascontiguousarray(ref.features, np.float32)
    atomic_write(base.with_suffix(".safetensors"), save(arrays))
    meta = {"key": ref.meta, "count": ref.stats.count, "dim": ref.stats.dim}
    atomic_write(base.with_suffix(".json"), (json.dumps(meta, indent=1) + "\n").encode())
