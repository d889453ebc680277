"""models.py: the torch nets, built from `dcgan.architecture`'s plan like the NumPy engine's."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from dcgan import limits
from dcgan.architecture import discriminator_plan, generator_plan, parameter_count
from dcgan.config import DCGAN_SIZES, ModelConfig
from dcgan.models import build_models, init_weights
from dcgan.numpy_engine.models import build_models as numpy_build_models

DEFAULTS = dict(kind="dcgan", image_size=28, channels=1, latent_dim=100, g_features=64)
DEFAULTS |= dict(d_features=64, spectral_norm=False, d_norm="batch")


def _model(**fields) -> ModelConfig:
    """A model config with every field explicit, so no recipe default is needed."""
    return ModelConfig(**{**DEFAULTS, **fields})


@pytest.mark.parametrize("size", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    cfg = _model(image_size=size, channels=channels, latent_dim=10, g_features=4, d_features=4)
    g, d = build_models(cfg)
    x = g(torch.randn(3, 10))
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (3,)


def test_unsupported_size_names_the_supported_ones():
    with pytest.raises(ValueError, match="28, 32, 64, 128"):
        build_models(_model(image_size=48))


def test_discriminator_returns_logits_not_probabilities():
    _, d = build_models(_model(image_size=32, g_features=4, d_features=4))
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    with torch.no_grad():
        d.main[-1].weight.fill_(1.0)  # make the logits large
        assert d(torch.ones(2, 1, 32, 32)).abs().max() > 1


# pytorch/examples dcgan/main.py, verbatim in structure (nc=3, nz=100, ngf=ndf=64), Sigmoid dropped
class ReferenceGenerator(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )


class ReferenceDiscriminator(nn.Module):
    def __init__(self, ndf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
        )


def _same_layers(ours: nn.Sequential, ref: nn.Sequential):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert type(a) is type(b)
        assert repr(a) == repr(b)


def test_64px_is_layer_for_layer_pytorch_examples():
    g, d = build_models(
        _model(image_size=64, channels=3, latent_dim=100, g_features=64, d_features=64)
    )
    ref_g, ref_d = ReferenceGenerator(), ReferenceDiscriminator()
    _same_layers(g.main, ref_g.main)
    _same_layers(d.main, ref_d.main)
    # state dicts are interchangeable, and the same weights give the same outputs
    ref_g.load_state_dict(g.state_dict(), strict=True)
    ref_d.load_state_dict(d.state_dict(), strict=True)
    z = torch.randn(4, 100, 1, 1)
    torch.testing.assert_close(g(z), ref_g.main(z))
    x = torch.randn(4, 3, 64, 64)
    torch.testing.assert_close(d(x), ref_d.main(x).flatten())


def test_mlp_matches_the_seed():
    g, d = build_models(_model(kind="mlp", image_size=28, channels=1, latent_dim=100))
    linears = [m.out_features for m in g.modules() if isinstance(m, nn.Linear)]
    assert linears == [256, 512, 1024, 784]
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [bn.momentum for bn in bns] == [0.2] * 3 and all(bn.eps == 1e-5 for bn in bns)
    assert [m.out_features for m in d.modules() if isinstance(m, nn.Linear)] == [512, 256, 1]
    assert g(torch.randn(5, 100)).shape == (5, 1, 28, 28)


def test_init_statistics():
    torch.manual_seed(0)
    g = nn.Sequential(nn.Conv2d(64, 64, 4), nn.BatchNorm2d(4096))
    init_weights(g)
    w, bn = g[0].weight, g[1].weight
    assert abs(w.mean()) < 1e-3 and abs(w.std() - 0.02) < 1e-3
    assert abs(bn.mean() - 1) < 2e-3 and abs(bn.std() - 0.02) < 2e-3
    assert torch.all(g[0].bias == 0) and torch.all(g[1].bias == 0)


# ---------------------------------------------------------------------------------------------
# D's stabilisers: spectral normalisation and the normalisation between its layers


def _sn_layers(d: nn.Module):
    return [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("kind", ["dcgan", "mlp"])
def test_spectral_norm_makes_each_weight_unit_norm(kind):
    torch.manual_seed(0)
    cfg = _model(kind=kind, image_size=28, g_features=4, d_features=4, spectral_norm=True)
    _, d = build_models(cfg)
    plain = build_models(_model(kind=kind, image_size=28, g_features=4, d_features=4))[1]
    layers = _sn_layers(d)
    assert layers and all(hasattr(m, "parametrizations") for m in layers)
    for _ in range(10):  # train-mode forwards run the power iteration
        d(torch.randn(4, 1, 28, 28))
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert abs(float(sigma) - 1) < 0.02
    # without SN the paper's N(0, 0.02) weights are far from unit norm
    sigmas = [
        float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2))
        for m in _sn_layers(plain)
    ]
    assert max(abs(s - 1) for s in sigmas) > 0.3


def test_spectral_norm_state_dict_round_trips_with_its_power_iteration_vectors():
    torch.manual_seed(0)
    cfg = _model(image_size=32, channels=3, g_features=4, d_features=4, spectral_norm=True)
    _, d = build_models(cfg)
    for _ in range(3):
        d(torch.randn(4, 3, 32, 32))
    sd = d.state_dict()
    assert "main.0.parametrizations.weight.original" in sd
    assert "main.0.parametrizations.weight.0._u" in sd  # u, v are buffers: saved and restored
    torch.manual_seed(1)  # a different init, so the load must carry everything
    _, d2 = build_models(cfg)
    d2.load_state_dict(sd)
    x = torch.randn(5, 3, 32, 32)
    torch.testing.assert_close(d2(x), d(x), rtol=0, atol=0)  # train mode: one more iteration each
    d.eval(), d2.eval()
    torch.testing.assert_close(d2(x), d(x), rtol=0, atol=0)


def test_spectral_norm_checkpoint_round_trip_through_the_train_state():
    from dcgan.config import RunConfig, TrainConfig
    from dcgan.torch_engine import create_state, restore_state, state_to_arrays

    model = _model(image_size=28, g_features=4, d_features=4, spectral_norm=True)
    config = RunConfig(model=model, train=TrainConfig(steps=2, seed=3))
    state = create_state(config, torch.device("cpu"))
    state.discriminator(torch.randn(4, 1, 28, 28))  # move u, v away from their start
    arrays, meta = state_to_arrays(state)
    other = create_state(RunConfig(model=model, train=TrainConfig(steps=2, seed=4)), state.device)
    restore_state(other, arrays, meta)
    for a, b in zip(
        state.discriminator.state_dict().values(), other.discriminator.state_dict().values()
    ):
        assert torch.equal(a, b)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_d_norm_choice_and_per_sample_logits(norm):
    torch.manual_seed(0)
    cfg = _model(image_size=32, g_features=4, d_features=4, d_norm=norm)
    _, d = build_models(cfg)
    kinds = {type(m) for m in d.modules()}
    assert (nn.BatchNorm2d in kinds) == (norm == "batch")
    assert (nn.GroupNorm in kinds) == (norm == "layer")
    x = torch.randn(6, 1, 32, 32)
    alone, in_batch = d(x[:1]), d(x)[:1]  # train mode
    # a per-sample critic (what a gradient penalty assumes) scores an image the same in any batch
    assert torch.allclose(alone, in_batch, atol=1e-5) == (norm != "batch")


def test_unknown_d_norm_is_a_usage_error():
    from dcgan.errors import UsageError

    with pytest.raises(UsageError, match="batch, none, layer"):
        ModelConfig(d_norm="instance").validate()


def test_the_numpy_engine_refuses_the_d_options_it_lacks():
    from dcgan.config import RunConfig, TrainConfig
    from dcgan.errors import UsageError

    numpy = TrainConfig(engine="numpy")
    RunConfig(train=numpy).validate()
    for model in (ModelConfig(spectral_norm=True), ModelConfig(d_norm="layer")):
        with pytest.raises(UsageError, match="torch engine"):
            RunConfig(model=model, train=numpy).validate()
        RunConfig(model=model).validate()  # the torch engine has both


# ---------------------------------------------------------------------------------------------
# one plan, three builders: torch (here), the NumPy engine and limits' estimates

_TORCH_KINDS = (
    (nn.Conv2d, "conv"),
    (nn.ConvTranspose2d, "conv_transpose"),
    (nn.Linear, "linear"),
    ((nn.BatchNorm1d, nn.BatchNorm2d), "batch_norm"),
    (nn.GroupNorm, "group_norm"),
    (nn.ReLU, "relu"),
    (nn.LeakyReLU, "leaky_relu"),
    (nn.Tanh, "tanh"),
)
_D_OPTIONS = [(False, "batch"), (True, "layer"), (False, "none"), (True, "batch")]
PLANNED = [
    _model(image_size=size, channels=c, latent_dim=10, g_features=8, d_features=4)
    for size in DCGAN_SIZES
    for c in (1, 3)
] + [_model(kind="mlp", image_size=s, latent_dim=6, g_features=4, d_features=3) for s in (8, 20)]
PLANNED = [
    ModelConfig(**{**cfg.__dict__, "spectral_norm": sn, "d_norm": norm})
    for cfg in PLANNED
    for sn, norm in _D_OPTIONS
]


def _torch_kind(module: nn.Module) -> str:
    # isinstance, not type: spectral norm swaps a layer's class for a parametrized subclass
    return next(kind for cls, kind in _TORCH_KINDS if isinstance(module, cls))


def _count(net) -> int:
    return sum(p.numel() for p in net.parameters())


def _shapes(state: dict) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


@pytest.mark.parametrize("cfg", PLANNED, ids=lambda c: "-".join(map(str, c.__dict__.values())))
def test_torch_numpy_and_limits_build_the_same_plan(cfg):
    g, d = build_models(cfg)
    for net, plan in ((g, generator_plan(cfg)), (d, discriminator_plan(cfg))):
        assert [_torch_kind(m) for m in net.main] == [spec.kind for spec in plan]
        assert _count(net) == parameter_count(plan)
    # limits' estimates (and the checkpoint size check that uses them) count what torch builds
    assert limits.parameter_counts(cfg) == (_count(g), _count(d))
    if cfg.kind == "dcgan" and cfg.d_norm == "layer":  # the MLP has no norm in D
        with pytest.raises(ValueError, match="'group_norm' layer; use the torch engine"):
            numpy_build_models(cfg, np.random.default_rng(0))
    if cfg.spectral_norm or cfg.d_norm != "batch":
        return  # the NumPy engine has neither (RunConfig.validate refuses them)
    ng, nd = numpy_build_models(cfg, np.random.default_rng(0))
    for ours, theirs in ((ng, g), (nd, d)):
        # the same keys and shapes: a checkpoint of either engine loads in the other
        assert _shapes(ours.state_dict()) == _shapes(theirs.state_dict())
        assert sum(v.size for v in ours.parameters().values()) == _count(theirs)


def _digest(state: dict) -> str:
    h = hashlib.sha256()
    for key, value in state.items():
        array = value.detach().numpy() if isinstance(value, torch.Tensor) else value
        h.update(key.encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


# sha256 (first 16 hex digits) over (key, bytes) of each fresh net's state dict, in its order,
# recorded before the plan had one owner (issue 23). Building a layer and initialising it both
# draw from the RNG, so a reordered plan or init gives other weights for the same seed, and old
# seeds (and resumes of old runs) would no longer reproduce.
_TINY = _model(latent_dim=10, g_features=8, d_features=4)
_SN_LAYER = _model(image_size=32, channels=3, latent_dim=7, g_features=5, d_features=3)
_SN_LAYER = ModelConfig(**{**_SN_LAYER.__dict__, "spectral_norm": True, "d_norm": "layer"})
_MLP = _model(kind="mlp", image_size=8, latent_dim=6, g_features=4, d_features=3)
PINNED = [
    (_TINY, "torch", "02c990abdd628cc0", "e6a159143cb6e9c0"),
    (_TINY, "numpy", "f930f27268a00038", "80d5b96571a1bec1"),
    (_SN_LAYER, "torch", "80850c66d2a486e3", "0520a6da37c85f90"),
    (_MLP, "torch", "4cc16353860817b4", "c20999c25fac84f7"),
    (_MLP, "numpy", "41a0821c6707cc8f", "75b0ef29923fe890"),
]


@pytest.mark.parametrize(("cfg", "engine", "g_digest", "d_digest"), PINNED)
def test_the_same_seed_gives_the_same_weights_as_before(cfg, engine, g_digest, d_digest):
    if engine == "torch":
        torch.manual_seed(0)
        g, d = build_models(cfg)
    else:
        g, d = numpy_build_models(cfg, np.random.default_rng(0))
    assert (_digest(g.state_dict()), _digest(d.state_dict())) == (g_digest, d_digest)
