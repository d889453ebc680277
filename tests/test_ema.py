"""The EMA generator's BatchNorm statistics: torch_engine.update_ema averages them like the
weights; bench/bn_recalibration.py re-measures them (the alternative the benchmarks compare)."""

import copy
import importlib.util
from pathlib import Path

import numpy as np
import torch

from dcgan import draw
from dcgan.config import ModelConfig
from dcgan.models import build_models
from dcgan.torch_engine import update_ema

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bn_recalibration.py"
_spec = importlib.util.spec_from_file_location("bn_recalibration", _PATH)
bn_recalibration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bn_recalibration)
RECALIBRATION = bn_recalibration.RECALIBRATION
batch_norms, recalibrate_bn = bn_recalibration.batch_norms, bn_recalibration.recalibrate_bn


def _generator(kind="dcgan"):
    torch.manual_seed(0)
    cfg = ModelConfig(
        kind=kind, image_size=28, latent_dim=8, g_features=4, d_features=4, d_norm="batch"
    )
    return build_models(cfg)[0]


def _bn_inputs(g, z):
    """The input of every BN layer for one train-mode batch, by forward hooks."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0])) for m in batch_norms(g)]
    with torch.no_grad():
        g.train()(z)
    for h in hooks:
        h.remove()
    return seen


def _stats(x):
    dims = [0] + list(range(2, x.ndim))
    n = x.numel() // x.shape[1]
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False) * n / (n - 1)  # BN keeps the unbiased variance
    return mean, var


def test_recalibration_matches_a_fresh_train_mode_batch():
    g = _generator()
    for m in batch_norms(g):  # statistics that belong to other weights
        m.running_mean.fill_(5.0)
        m.running_var.fill_(9.0)
    g.eval()
    recalibrate_bn(g, 8, n_batches=1, batch_size=32, seed=7)
    assert not g.training  # the mode is restored
    z = torch.from_numpy(draw.latents(32, 8, 7, RECALIBRATION))
    inputs = _bn_inputs(copy.deepcopy(g), z)
    for m, x in zip(batch_norms(g), inputs):
        mean, var = _stats(x)
        torch.testing.assert_close(m.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.running_var, var, rtol=1e-4, atol=1e-5)
        assert m.momentum == 0.1  # restored


def test_recalibration_averages_batches_equally_and_ignores_old_stats():
    g = _generator()
    recalibrate_bn(g, 8, n_batches=3, batch_size=16, seed=1)
    first = [m.running_mean.clone() for m in batch_norms(g)]
    for m in batch_norms(g):
        m.running_mean.fill_(-3.0)
    recalibrate_bn(g, 8, n_batches=3, batch_size=16, seed=1)
    for a, m in zip(first, batch_norms(g)):
        torch.testing.assert_close(m.running_mean, a)
    z = torch.from_numpy(draw.latents(48, 8, 1, RECALIBRATION))
    per_batch = [_bn_inputs(copy.deepcopy(g), chunk) for chunk in z.split(16)]
    layer0 = torch.stack([_stats(b[0])[0] for b in per_batch]).mean(dim=0)
    torch.testing.assert_close(batch_norms(g)[0].running_mean, layer0, rtol=1e-4, atol=1e-5)


def test_recalibration_keeps_the_mlp_momentum_and_changes_no_weight():
    g = _generator("mlp")
    before = copy.deepcopy(g.state_dict())
    recalibrate_bn(g, 8, n_batches=2, batch_size=8)
    assert all(m.momentum == 0.2 for m in batch_norms(g))
    for key, value in g.state_dict().items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(value, before[key])
    assert not torch.equal(g.state_dict()["main.2.running_mean"], before["main.2.running_mean"])


def test_eval_output_after_recalibration_is_close_to_train_mode():
    # what sampling (eval mode) then sees: statistics of these weights, not of other ones
    g = _generator()
    for m in batch_norms(g):
        m.running_mean.fill_(1.0)
    z = torch.from_numpy(draw.latents(256, 8, 0, RECALIBRATION))
    with torch.no_grad():
        train_out = g.train()(z)
        stale = g.eval()(z)
        recalibrate_bn(g, 8, n_batches=1, batch_size=256, seed=0)
        fresh = g.eval()(z)
    assert (fresh - train_out).abs().mean() < 1e-3 < (stale - train_out).abs().mean()


def test_recalibration_has_a_latent_stream_of_its_own():
    assert RECALIBRATION == 3 and RECALIBRATION not in (draw.USER, draw.GRID, draw.EVAL)


def test_update_ema_averages_the_statistics():
    ema, g = _generator(), _generator()
    for m in batch_norms(g):
        m.running_mean.fill_(1.0)
        m.num_batches_tracked.fill_(5)
    update_ema(ema, g, 0.75)
    for m in batch_norms(ema):
        assert np.allclose(m.running_mean.numpy(), 0.25)
        assert int(m.num_batches_tracked) == 5
