import pytest
import torch
import torch.nn.functional as F

from dcgan.errors import UsageError
from dcgan.losses import LOSSES, gradient_penalty, r1_from_logits, r1_penalty


def test_bce_equals_torch_bce_with_logits():
    real, fake = torch.randn(50) * 3, torch.randn(50) * 3
    d = LOSSES["bce"].d_loss(real, fake)
    expected = F.binary_cross_entropy_with_logits(
        real, torch.ones(50)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros(50))
    torch.testing.assert_close(d, expected)
    torch.testing.assert_close(
        LOSSES["bce"].g_loss(fake), F.binary_cross_entropy_with_logits(fake, torch.ones(50))
    )


def test_bce_is_stable_for_huge_logits():
    big = torch.tensor([1e4, -1e4])
    assert torch.isfinite(LOSSES["bce"].d_loss(big, -big))
    assert torch.isfinite(LOSSES["bce"].g_loss(-big))


def test_losses_reach_zero_at_their_targets():
    assert LOSSES["lsgan"].d_loss(torch.ones(3), torch.zeros(3)) == 0
    assert LOSSES["lsgan"].g_loss(torch.ones(3)) == 0
    assert LOSSES["hinge"].d_loss(torch.full((3,), 2.0), torch.full((3,), -2.0)) == 0


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    w = torch.zeros(1, 4)
    w[0, 0] = 1.0  # D(x) = x[0]: gradient norm exactly 1 everywhere
    critic = lambda x: x.flatten(1) @ w.T
    x_real, x_fake = torch.randn(8, 1, 2, 2), torch.randn(8, 1, 2, 2)
    gp = gradient_penalty(critic, x_real, x_fake, torch.rand(8))
    assert gp.abs() < 1e-10
    gp2 = gradient_penalty(lambda x: 3 * critic(x), x_real, x_fake, torch.rand(8))
    torch.testing.assert_close(gp2, torch.tensor(4.0))


def test_r1_penalty_of_a_linear_critic_is_the_squared_weight_norm():
    w = torch.randn(1, 12)
    critic = lambda x: (x.flatten(1) @ w.T).flatten()  # grad_x D = w for every x
    r1 = r1_penalty(critic, torch.randn(5, 3, 2, 2))
    torch.testing.assert_close(r1, w.pow(2).sum())


def test_r1_penalty_matches_the_analytic_value_and_trains_d():
    a = torch.tensor(0.7, requires_grad=True)
    critic = lambda x: a * 0.5 * x.flatten(1).pow(2).sum(dim=1)  # grad_x D = a x
    x = torch.randn(6, 1, 3, 3)
    r1 = r1_penalty(critic, x)
    mean_sq = x.flatten(1).pow(2).sum(dim=1).mean()
    torch.testing.assert_close(r1, a.detach() ** 2 * mean_sq)
    (grad_a,) = torch.autograd.grad(r1, a)  # the penalty's graph reaches D's parameters
    torch.testing.assert_close(grad_a, 2 * a.detach() * mean_sq)
    assert not x.requires_grad  # the caller's batch is left alone


def test_r1_penalty_agrees_with_finite_differences_on_a_conv_critic():
    torch.manual_seed(0)
    d = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.LazyLinear(1)
    ).double()
    x = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    d(x)
    critic = lambda t: d(t).flatten()
    eps, total = 1e-6, 0.0
    for i in range(2):  # per-sample |grad|^2 by central differences
        g = torch.zeros(25, dtype=torch.float64)
        for j in range(25):
            e = torch.zeros(25, dtype=torch.float64)
            e[j] = eps
            xp, xm = x[i : i + 1] + e.view(1, 1, 5, 5), x[i : i + 1] - e.view(1, 1, 5, 5)
            g[j] = (critic(xp) - critic(xm)).item() / (2 * eps)
        total += float(g.pow(2).sum())
    torch.testing.assert_close(r1_penalty(critic, x).item(), total / 2, rtol=1e-6, atol=1e-8)


def test_one_loss_registry_for_config_and_both_engines():
    from dcgan import config
    from dcgan.numpy_engine.losses import LOSSES as NP_LOSSES

    assert tuple(LOSSES) == config.LOSSES
    assert all(LOSSES[name].name == name for name in LOSSES)
    # the NumPy engine has every loss but those that need double backprop, which config rejects
    missing = set(config.LOSSES) - set(NP_LOSSES)
    assert set(NP_LOSSES) <= set(config.LOSSES)
    assert missing == {n for n in config.LOSSES if LOSSES[n].gradient_penalty}
    for name in missing:
        with pytest.raises(UsageError, match="numpy"):
            config.RunConfig(train=config.TrainConfig(loss=name, engine="numpy")).validate()


def test_r1_from_the_steps_own_logits_equals_r1_penalty():
    torch.manual_seed(0)
    d = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
    )
    critic = lambda t: d(t).flatten()
    x = torch.randn(5, 3, 2, 2).requires_grad_(True)
    torch.testing.assert_close(r1_from_logits(critic(x), x), r1_penalty(critic, x))


def test_gradient_penalty_at_the_real_images_is_the_critics_gradient_norm():
    torch.manual_seed(0)
    d = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)
    )
    x_real, x_fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    c = gradient_penalty(d, x_real, x_fake, torch.ones(6))  # alpha 1: at the real images
    x = x_real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(d(x).sum(), x)
    torch.testing.assert_close(c, (g.flatten(1).norm(dim=1) - 1).pow(2).mean())
