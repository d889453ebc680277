"""limits.py: memory and disk estimates, checked before anything is allocated (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan import draw, limits
from dcgan.checkpoint import check_sizes
from dcgan.config import ModelConfig, RunConfig, TrainConfig
from dcgan.errors import DataError, UsageError
from dcgan.models import build_models
from dcgan.prepared import PreparedWriter

DEFAULTS = dict(kind="dcgan", image_size=28, channels=1, latent_dim=100, g_features=64)
DEFAULTS |= dict(d_features=64, spectral_norm=False, d_norm="batch")


def _model(**fields) -> ModelConfig:
    """A model config with every field explicit, so no recipe default is needed."""
    return ModelConfig(**{**DEFAULTS, **fields})


def _count(net) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "model",
    [
        _model(),
        _model(image_size=32, g_features=8, d_features=16),
        _model(image_size=64, channels=3),
        _model(image_size=128, channels=3, latent_dim=7),
        _model(kind="mlp", image_size=20, g_features=8, d_features=3),
        _model(image_size=32, g_features=8, d_features=16, d_norm="none"),
        _model(image_size=64, g_features=8, d_features=16, d_norm="layer", spectral_norm=True),
    ],
)
def test_parameter_counts_match_the_models(model):
    g, d = build_models(model)
    assert limits.parameter_counts(model) == (_count(g), _count(d))


def test_a_discriminator_without_norms_passes_the_checkpoint_size_check(tmp_path):
    # the counts once held BatchNorm's 2 x width per hidden conv even for --d-norm none, so a
    # run's own checkpoint "did not match its config" at the end of training and on --resume
    model = _model(image_size=32, g_features=4, d_features=4, d_norm="none")
    g, d = build_models(model)
    arrays = {f"{prefix}.{k}": v.numpy() for prefix, net in (("generator", g), ("discriminator", d))
              for k, v in net.state_dict().items()}  # fmt: skip
    check_sizes(arrays, RunConfig(model=model), tmp_path / "ckpt.safetensors")


def test_step_estimate_grows_with_batch_and_width():
    small = RunConfig(model=_model(), train=TrainConfig(batch_size=64, ema=False))
    assert 30e6 < limits.step_bytes(small) < 150e6  # measured: 60 MB (bench, torch CPU)
    wide = RunConfig(model=_model(g_features=4096), train=TrainConfig(batch_size=64))
    huge_batch = RunConfig(model=_model(), train=TrainConfig(batch_size=65536))
    assert limits.step_bytes(wide) > 10e9 and limits.step_bytes(huge_batch) > 10e9


def test_check_step_refuses_or_warns_with_the_numbers():
    config = RunConfig(model=_model(), train=TrainConfig(batch_size=4096))
    need = limits.step_bytes(config)
    with pytest.raises(UsageError, match=r"needs about .* GB per training step but only"):
        limits.check_step(config, available=need // 2)
    assert "per training step" in limits.check_step(config, available=int(need * 1.5))
    assert limits.check_step(config, available=need * 10) is None


def test_batch_larger_than_the_data_set():
    config = RunConfig(train=TrainConfig(batch_size=100_000))
    with pytest.raises(UsageError, match=r"larger than the data set \(10000 images\)"):
        limits.check_batch(config, 10_000)
    limits.check_batch(RunConfig(train=TrainConfig(batch_size=64)), 64)


def test_a_cache_that_does_not_fit_on_disk_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "free_disk", lambda path: 10**9)
    cache = tmp_path / "prepared" / "big-123"
    with pytest.raises(DataError, match=r"needs 50.3 GB but only 1.0 GB is free"):
        PreparedWriter(cache, 1000, (3, 4096, 4096))
    assert list((tmp_path / "prepared").iterdir()) == []


def test_nice_candidates_are_bounded(monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 8 * 10**9)
    assert draw.nice_candidates(64, 0.5) == 128
    with pytest.raises(UsageError, match="would draw 64000000000 candidates"):
        draw.nice_candidates(64, 1e-9)
    for bad in (0, -1, 1.5, float("nan")):
        with pytest.raises(UsageError, match=r"--nice must be a number in \(0, 1\]"):
            draw.nice_candidates(64, bad)
    with pytest.raises(UsageError, match="in memory"):
        draw.nice_candidates(64, 0.0001, image_shape=(3, 128, 128))  # 640k images: 157 GB
    assert limits.gib(1.6e12) == "1.6 TB" and limits.gib(np.int64(840e6)) == "840.0 MB"
