"""architecture.py: the one layer plan that the torch models, the NumPy engine and limits build from."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dcgan import architecture
from dcgan.architecture import discriminator_plan, generator_plan, hidden_maps, parameter_count
from dcgan.config import DCGAN_SIZES, ModelConfig

PAPER = dict(kind="dcgan", image_size=64, channels=3, latent_dim=100, g_features=64, d_features=64)
PAPER |= dict(spectral_norm=False, d_norm="batch")


def _model(**fields) -> ModelConfig:
    """Every field explicit (the paper's 64 px net by default), so no recipe default is needed."""
    return ModelConfig(**{**PAPER, **fields})


def test_imports_neither_torch_nor_numpy():
    # both engines build from this plan, and the NumPy engine must never import torch
    tree = ast.parse(Path(architecture.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m.split(".")[0] for m in imported} & {"torch", "numpy"}


def _shapes(plan):
    """(channels, side) after each layer; checks that every layer takes its input's width."""
    out = []
    for before, spec in zip([None, *plan], plan):
        if before is not None:
            assert spec.n_in == before.n_out, (before, spec)
        out.append((spec.n_out, spec.side))
    return out


@pytest.mark.parametrize("size", DCGAN_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_state_sizes(size, channels):
    cfg = _model(image_size=size, channels=channels, g_features=8, d_features=4)
    base = 7 if size == 28 else 4  # 28 px grows 7 -> 14 -> 28; powers of two from 4x4
    g = _shapes(generator_plan(cfg))
    assert g[0] == (8 * size // base // 2, base) and g[-1] == (channels, size)
    sides = [side for _, side in g]
    assert sides == sorted(sides) and all(b in (a, 2 * a) for a, b in zip(sides, sides[1:]))
    d = _shapes(discriminator_plan(cfg))
    assert d[0] == (4, size // 2) and d[-1] == (1, 1)
    assert [s.side for s in discriminator_plan(cfg) if s.kind == "conv"][-2] == base


def test_64px_is_the_papers_net():
    g, d = generator_plan(_model()), discriminator_plan(_model())
    convs = [(s.n_in, s.n_out, s.kernel, s.stride, s.padding) for s in g if s.kind != "relu"]
    assert [s.kind for s in g[:3]] == ["conv_transpose", "batch_norm", "relu"]
    assert [c for c in convs if c[2]] == [
        (100, 512, 4, 1, 0),
        (512, 256, 4, 2, 1),
        (256, 128, 4, 2, 1),
        (128, 64, 4, 2, 1),
        (64, 3, 4, 2, 1),
    ]
    assert g[-1].kind == "tanh" and d[-1].kind == "conv" and d[-1].n_out == 1
    # the first D convolution has no normalisation; LeakyReLU(0.2) after every hidden one
    assert [s.kind for s in d[:3]] == ["conv", "leaky_relu", "conv"]
    assert {s.slope for s in d if s.kind == "leaky_relu"} == {0.2}


@pytest.mark.parametrize(("norm", "kind"), [("batch", "batch_norm"), ("layer", "group_norm")])
def test_d_norm_follows_every_hidden_conv_but_the_first(norm, kind):
    d = discriminator_plan(_model(d_norm=norm))
    after = [b.kind for a, b in zip(d, d[1:]) if a.kind == "conv"]
    assert after == ["leaky_relu", kind, kind, kind]
    assert not any(s.kind in architecture.NORMS for s in discriminator_plan(_model(d_norm="none")))


def test_mlp_plan_and_its_counts():
    cfg = _model(kind="mlp", image_size=28, channels=1, g_features=64, d_features=64)
    g, d = generator_plan(cfg), discriminator_plan(cfg)
    assert [s.n_out for s in g if s.kind == "linear"] == [256, 512, 1024, 784]
    assert {s.momentum for s in g if s.kind == "batch_norm"} == {0.2}  # Keras's momentum 0.8
    assert [s.n_out for s in d if s.kind == "linear"] == [512, 256, 1]
    assert hidden_maps(d) == [(512, 1), (256, 1)]
    n = 100 * 256 + 256 + 2 * 256 + 256 * 512 + 512 + 2 * 512 + 512 * 1024 + 1024 + 2 * 1024
    assert parameter_count(g) == n + 1024 * 784 + 784


def test_bad_sizes_kinds_and_norms_are_named():
    with pytest.raises(ValueError, match="28, 32, 64, 128"):
        generator_plan(_model(image_size=48))
    with pytest.raises(ValueError, match="dcgan or mlp"):
        discriminator_plan(_model(kind="vae"))
    with pytest.raises(ValueError, match="batch, none, layer"):
        discriminator_plan(_model(d_norm="instance"))
