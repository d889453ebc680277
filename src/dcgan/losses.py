"""GAN losses as pure functions of discriminator logits, chosen by name.

Each loss gives D's loss from (logits_real, logits_fake) and G's loss from logits_fake. Losses
that need more than logits (WGAN-GP's gradient penalty) declare it, and the training step adds it.
The penalties that differentiate D (gradient_penalty, r1_penalty) are functions of D and images.
The loss names live once, in config.LOSSES (torch-free, for validation); LOSSES here is built
from them, and a test holds the NumPy engine's registry to the same names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import config

Tensor = torch.Tensor


def _bce_d(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    # -log sigmoid(real) - log(1 - sigmoid(fake)), computed stably on logits
    return F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()


def _bce_g(logits_fake: Tensor) -> Tensor:
    # the non-saturating generator loss: -log sigmoid(fake)
    return F.softplus(-logits_fake).mean()


def _lsgan_d(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    # Mao et al. 2017 with a-b-c = 0-1-1; the 1/2 matches the paper's objective
    return 0.5 * ((logits_real - 1).pow(2).mean() + logits_fake.pow(2).mean())


def _lsgan_g(logits_fake: Tensor) -> Tensor:
    return 0.5 * (logits_fake - 1).pow(2).mean()


def _hinge_d(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean()


def _wasserstein_d(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    return logits_fake.mean() - logits_real.mean()


def _wasserstein_g(logits_fake: Tensor) -> Tensor:
    return -logits_fake.mean()


@dataclass(frozen=True)
class GANLoss:
    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    gradient_penalty: bool = False  # WGAN-GP: add gp_weight * (|grad D(x_hat)| - 1)^2
    default_n_critic: int = 1
    probabilities: bool = True  # whether sigmoid(logits) reads as D's probability "real"


_LOSSES: dict[str, GANLoss] = {
    "bce": GANLoss("bce", _bce_d, _bce_g),
    # least squares: D's output itself is the score (targets 0 and 1), not a logit
    "lsgan": GANLoss("lsgan", _lsgan_d, _lsgan_g, probabilities=False),
    "hinge": GANLoss("hinge", _hinge_d, _wasserstein_g, probabilities=False),
    "wgan-gp": GANLoss(
        "wgan-gp",
        _wasserstein_d,
        _wasserstein_g,
        gradient_penalty=True,
        default_n_critic=5,
        probabilities=False,
    ),
}
# in config.LOSSES's order; a name there without a loss here fails at import, not mid-training
LOSSES: dict[str, GANLoss] = {name: _LOSSES[name] for name in config.LOSSES}


def gradient_penalty(discriminator, x_real: Tensor, x_fake: Tensor, alpha: Tensor) -> Tensor:
    """Gulrajani et al. 2017: E[(|grad_x D(x_hat)|_2 - 1)^2] on the interpolates
    x_hat = alpha x_real + (1 - alpha) x_fake, alpha (N,) in [0, 1) drawn by the caller. The penalty is per sample only if D is: use a
    critic without BatchNorm (ModelConfig.d_norm "layer" or "none"), as Gulrajani et al. ask."""
    alpha = alpha.view(-1, 1, 1, 1)
    x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(discriminator, x_real: Tensor) -> Tensor:
    """Mescheder et al. 2018's R1: E_x[|grad_x D(x)|_2^2] over the real batch (N, C, H, W).

    The caller weights it by gamma / 2 and adds it to D's loss. The graph is kept (create_graph)
    so the penalty trains D. `discriminator` is any callable of images to logits (N,), e.g. D
    after DiffAugment, so the penalty sees what D sees.
    """
    x = x_real.detach().requires_grad_(True)
    return r1_from_logits(discriminator(x), x)


def r1_from_logits(logits_real: Tensor, x_real: Tensor) -> Tensor:
    """R1 from logits already computed on x_real (which must require grad): saves the second D
    forward when the step's own real logits serve, x_real.requires_grad_() before D(x_real)."""
    (grad,) = torch.autograd.grad(logits_real.float().sum(), x_real, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(dim=1).mean()
