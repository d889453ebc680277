"""NumPy-engine models and Adam through the checkpoint format and back (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan.checkpoint import read_checkpoint, write_checkpoint
from dcgan.config import ModelConfig
from dcgan.numpy_engine import Adam, build_models
from dcgan.numpy_engine.serialize import (
    model_from_arrays,
    model_to_arrays,
    optimizer_from_arrays,
    optimizer_to_arrays,
)

CFG = ModelConfig(
    image_size=28, channels=1, latent_dim=8, g_features=4, d_features=4, d_norm="batch"
)


def _trained(seed: int):
    """G, D and G's Adam after one train-mode forward and one Adam step on random gradients."""
    g, d = build_models(CFG, np.random.default_rng(seed))
    opt = Adam(g.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed + 1)
    d(g(rng.standard_normal((4, CFG.latent_dim), dtype=np.float32)))
    opt.step({k: rng.standard_normal(v.shape).astype(np.float32) for k, v in g.gradients().items()})
    return g, d, opt


def test_checkpoint_round_trip(tmp_path):
    g, d, opt = _trained(0)
    arrays = {**model_to_arrays("generator", g), **model_to_arrays("discriminator", d)}
    opt_arrays, entry = optimizer_to_arrays("opt_g", opt)
    assert "generator.main.1.num_batches_tracked" in arrays
    assert "opt_g.main.0.weight.exp_avg_sq" in opt_arrays
    write_checkpoint(
        tmp_path / "c.safetensors", {**arrays, **opt_arrays}, {"optimizers": {"opt_g": entry}}
    )

    loaded, meta = read_checkpoint(tmp_path / "c.safetensors", validate=False)
    g2, d2, opt2 = _trained(5)  # different weights and moments, to be overwritten
    model_from_arrays(g2, loaded, "generator")
    model_from_arrays(d2, loaded, "discriminator")
    optimizer_from_arrays(opt2, loaded, meta["optimizers"]["opt_g"], "opt_g")
    for a, b in ((g, g2), (d, d2)):
        for key, value in a.state_dict().items():
            np.testing.assert_array_equal(value, b.state_dict()[key], err_msg=key)
    assert opt2.step_count == opt.step_count == 1
    # the next step is bit-identical
    grads = {k: np.full(v.shape, 0.1, np.float32) for k, v in g.parameters().items()}
    opt.step(grads)
    opt2.step(grads)
    for key, value in g.parameters().items():
        np.testing.assert_array_equal(value, g2.parameters()[key], err_msg=key)


def test_mismatched_checkpoint_is_refused():
    g, _, _ = _trained(0)
    arrays = model_to_arrays("generator", g)
    other, _ = build_models(
        ModelConfig(
            image_size=28, channels=1, latent_dim=8, g_features=8, d_features=64, d_norm="batch"
        ),
        np.random.default_rng(0),
    )
    with pytest.raises(ValueError, match="shape"):
        model_from_arrays(other, arrays, "generator")
    del arrays["generator.main.0.weight"]
    with pytest.raises(KeyError, match="missing"):
        model_from_arrays(g, arrays, "generator")
