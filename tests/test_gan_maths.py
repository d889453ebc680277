"""The GAN maths of one training step, each a defect a careful reader of the papers would catch:
G's step leaves D alone (weights, Adam state, trainability, even after an error), critic-only
fakes build no graph, the EMA generator's BatchNorm statistics follow its weights, LSGAN logs
its own output, and WGAN-GP's critic has no batch statistics in its penalty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_config
from dcgan.config import recipe_defaults
from dcgan.datasets import ImageSet, load_digits
from dcgan.engines import Solo
from dcgan.loop import step_inputs
from dcgan.torch_engine import create_state, feeder, train_step, update_ema

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return ImageSet(images=load_digits().images[:256], name="digits256")


def _inputs(state, digits):
    return step_inputs(state.config, state.step, len(digits), feeder(state, digits), Solo())[0]


def test_the_g_step_leaves_d_and_its_adam_state_untouched(digits, monkeypatch):
    state = create_state(tiny_config(), CPU)
    train_step(state, _inputs(state, digits))  # Adam state exists from here on
    d_weights = {k: v.clone() for k, v in state.discriminator.state_dict().items()}
    d_adam = {k: v.clone() for s in state.opt_d.state.values() for k, v in s.items()}
    # run only the G half: make the D optimizer's step a no-op and check nothing else moved D
    monkeypatch.setattr(state.opt_d, "step", lambda: None)
    monkeypatch.setattr(state.opt_d, "zero_grad", lambda set_to_none=True: None)
    train_step(state, _inputs(state, digits))
    after = state.discriminator.state_dict()
    for key, value in d_weights.items():
        if (
            "running" not in key and "num_batches" not in key
        ):  # BN statistics do move in D's forward
            assert torch.equal(after[key], value), key
    again = {k: v for s in state.opt_d.state.values() for k, v in s.items()}
    assert all(torch.equal(again[k], v) for k, v in d_adam.items())
    assert all(p.requires_grad for p in state.discriminator.parameters())


def test_d_is_trainable_again_after_an_error_in_the_g_step(digits, monkeypatch):
    state = create_state(tiny_config(), CPU)
    monkeypatch.setattr(state.opt_g, "step", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        train_step(state, _inputs(state, digits))
    assert all(p.requires_grad for p in state.discriminator.parameters())


def test_critic_only_fakes_build_no_graph(digits):
    state = create_state(tiny_config(loss="hinge", n_critic=3), CPU)
    grad_modes = []
    forward = state.generator.forward
    state.generator.forward = lambda z: (grad_modes.append(torch.is_grad_enabled()), forward(z))[1]
    train_step(state, _inputs(state, digits))
    assert grad_modes == [False, False, False, True]  # 3 critic fakes, then G's own


def test_ema_batchnorm_statistics_follow_the_average():
    state = create_state(tiny_config(ema=True), CPU)
    g, ema = state.generator, state.generator_ema
    for b in g.buffers():
        if b.dtype.is_floating_point:
            b.add_(1.0)
    before = [b.clone() for b in ema.buffers()]
    update_ema(ema, g, 0.9)
    for b0, b_ema, b in zip(before, ema.buffers(), g.buffers()):
        if b.dtype.is_floating_point:
            torch.testing.assert_close(b_ema, 0.9 * b0 + 0.1 * b)
        else:
            assert torch.equal(b_ema, b)


@pytest.mark.parametrize("loss, score", [("lsgan", lambda t: t), ("bce", torch.sigmoid)])
def test_logged_d_real_is_the_loss_s_own_reading(digits, loss, score):
    # bce logs sigmoid(logit); lsgan's D output is the score itself (targets 0 and 1)
    import copy

    state = create_state(tiny_config(loss=loss, precision="fp32"), CPU)  # fp32, as `expected`
    inputs = _inputs(state, digits)
    d = copy.deepcopy(state.discriminator)  # the same train-mode forward, before the update
    with torch.no_grad():
        expected = score(d(inputs.reals[0].contiguous(memory_format=torch.channels_last))).mean()
    stats = train_step(state, inputs)
    torch.testing.assert_close(stats["d_real"], expected)


def test_wgan_gp_critic_has_no_batch_statistics():
    model, _ = recipe_defaults("default", "dcgan", 28, "wgan-gp")
    assert model["d_norm"] == "layer"
    config = tiny_config(loss="wgan-gp", n_critic=2)
    config = config.__class__(
        model=config.model.__class__(**{**config.model.__dict__, **model}),
        data=config.data,
        train=config.train,
    ).validate()
    state = create_state(config, CPU)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in state.discriminator.modules())
    # so each sample's penalty depends on that sample alone
    x = torch.randn(4, 1, 28, 28, requires_grad=True)
    out = state.discriminator(x)
    (g0,) = torch.autograd.grad(out[0], x)
    assert torch.count_nonzero(g0[1:]) == 0


def test_augmentation_is_a_function_of_seed_step_and_critic(digits):
    config = tiny_config(augment="color,translation,cutout")
    a, b = create_state(config, CPU), create_state(config, CPU)
    inputs = _inputs(a, digits)
    sa, sb = train_step(a, inputs), train_step(b, inputs)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    plain = create_state(tiny_config(), CPU)
    assert not torch.equal(train_step(plain, inputs)["loss_d"], sa["loss_d"])
    np.testing.assert_array_equal(
        np.concatenate([p.detach().numpy().ravel() for p in a.generator.parameters()]),
        np.concatenate([p.detach().numpy().ravel() for p in b.generator.parameters()]),
    )
