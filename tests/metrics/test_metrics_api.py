"""The registry and Evaluator the training loop and CLI call, and the reference-statistics cache."""

import json

import numpy as np
import pytest

from dcgan.datasets import load_digits
from dcgan.errors import UsageError
from dcgan.metrics import (
    METRICS,
    Evaluator,
    cheap_metric_names,
    compute_metrics,
    is_better,
    parse_metric_names,
)
from dcgan.metrics.reference import reference_dir, reference_stats


@pytest.fixture(scope="module")
def digits():
    images = load_digits().images
    idx = np.random.default_rng(0).permutation(len(images))
    return images[idx[:400]], images[idx[400:800]]


def test_registry_and_names():
    assert set(METRICS) == {"swd", "digits", "fid", "kid", "is"}
    assert cheap_metric_names(True) == ("digits", "swd")
    assert cheap_metric_names(False) == ("swd",)
    assert all(METRICS[n].cheap and not METRICS[n].needs_weights for n in cheap_metric_names(1))
    assert parse_metric_names("fid, kid,fid") == ("fid", "kid")
    with pytest.raises(UsageError, match="unknown metric fd"):
        parse_metric_names("swd,fd")
    assert is_better("digits", 1.0, 2.0) and not is_better("is", 1.0, 2.0)
    assert is_better("swd", 5.0, None)


def test_compute_metrics_keys_and_ranking(digits, tmp_path):
    real, fake = digits
    out = compute_metrics(fake, real, ("digits", "swd"), cache_dir=tmp_path)
    assert set(out) == {
        "digits_fd", "digits_coverage", "digits_confident", "digits_kl",
        "swd", "swd_28", "swd_14",
    }  # fmt: skip
    assert all(isinstance(v, float) for v in out.values())
    noise = np.random.default_rng(0).integers(0, 256, fake.shape, dtype=np.uint8)
    worse = compute_metrics(noise, real, "digits,swd", cache_dir=tmp_path)
    assert worse["digits_fd"] > out["digits_fd"] and worse["swd"] > out["swd"]


def test_evaluator_reuses_cached_reference_and_checks_inputs(digits, tmp_path):
    real, fake = digits
    first = Evaluator(real, ("digits",), split="test", cache_dir=tmp_path)
    assert not first.digits_ref.from_cache
    second = Evaluator(real, ("digits",), split="test", cache_dir=tmp_path)
    assert second.digits_ref.from_cache
    np.testing.assert_allclose(second.digits_ref.stats.cov, first.digits_ref.stats.cov)
    assert first(fake) == second(fake)
    with pytest.raises(UsageError, match="uint8"):
        first(fake.astype(np.float32))
    with pytest.raises(UsageError, match="one shape"):
        Evaluator(real, ("swd",), use_cache=False)(np.zeros((4, 1, 32, 32), np.uint8))


def test_reference_key_covers_content_count_and_extractor(digits, tmp_path):
    real, _ = digits
    calls = []

    def extract(x):
        calls.append(len(x))
        return x.reshape(len(x), -1)[:, :5].astype(np.float64)

    a = reference_stats(real, "toy", extract, dataset="digits", split="test", cache_dir=tmp_path)
    b = reference_stats(real, "toy", extract, dataset="digits", split="test", cache_dir=tmp_path)
    assert b.from_cache and calls == [400]
    changed = real.copy()
    changed[0, 0, 14, 14] ^= 1
    reference_stats(changed, "toy", extract, dataset="digits", split="test", cache_dir=tmp_path)
    reference_stats(real[:300], "toy", extract, dataset="digits", split="test", cache_dir=tmp_path)
    reference_stats(real, "toy2", extract, dataset="digits", split="test", cache_dir=tmp_path)
    assert calls == [400, 400, 300, 400]
    files = sorted(p.name for p in reference_dir(tmp_path).iterdir())
    assert len(files) == 8 and all(f.endswith((".json", ".safetensors")) for f in files)
    meta = json.loads(next(reference_dir(tmp_path).glob("*.json")).read_text())
    assert meta["key"]["dataset"] == "digits" and meta["count"] in (300, 400)
    np.testing.assert_allclose(a.stats.mean, b.stats.mean)
