import torch
import torch.nn.functional as F

from dcgan.losses import LOSSES, gradient_penalty


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
