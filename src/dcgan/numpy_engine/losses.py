"""The GAN losses of `dcgan.losses` as value-and-gradient functions of D's logits (NumPy or CuPy).

Every D loss here is a term in the real logits plus a term in the fake ones; each term and G's
loss return (loss, d loss / d logits).
WGAN-GP is absent: its gradient penalty differentiates through a gradient (double backprop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import ops
from .backend import array_module


def _bce_real(real):
    # -log sigmoid(real): BCE with target 1
    loss, cache = ops.bce_with_logits_forward(real, 1)
    return loss, ops.bce_with_logits_backward(cache)


def _bce_fake(fake):
    # -log(1 - sigmoid(fake)): BCE with target 0
    loss, cache = ops.bce_with_logits_forward(fake, 0)
    return loss, ops.bce_with_logits_backward(cache)


def _lsgan(target):
    # Mao et al. 2017 with a-b-c = 0-1-1; the 1/2 matches the paper's objective
    def loss(logits):
        value, diff = ops.mse_forward(logits, target)
        return 0.5 * value, ops.mse_backward(diff, 0.5)

    return loss


def _hinge(sign):
    # relu(1 - real) for sign -1, relu(1 + fake) for sign +1; relu's gradient at 0 is 0 as in torch
    def loss(logits):
        margin = 1 + sign * logits
        active = (margin > 0).astype(logits.dtype)
        return (margin * active).mean(), active * (sign / logits.size)

    return loss


def _wasserstein_g(fake):
    return -fake.mean(), array_module(fake).full_like(fake, -1.0 / fake.size)


@dataclass(frozen=True)
class GANLoss:
    """D's loss is d_real(logits_real) + d_fake(logits_fake); G's is g_loss(logits_fake).

    Each function maps logits to (scalar loss, d loss / d logits). The split lets D backpropagate
    the real batch before it sees the fake one (a layer caches one forward at a time).
    """

    name: str
    d_real: Callable
    d_fake: Callable
    g_loss: Callable
    probabilities: bool = True  # whether sigmoid(logits) reads as D's probability "real"


LOSSES: dict[str, GANLoss] = {
    "bce": GANLoss("bce", _bce_real, _bce_fake, _bce_real),
    "lsgan": GANLoss("lsgan", _lsgan(1), _lsgan(0), _lsgan(1), probabilities=False),
    "hinge": GANLoss("hinge", _hinge(-1), _hinge(1), _wasserstein_g, probabilities=False),
}


def sigmoid(x):
    xp = array_module(x)
    return 0.5 * (xp.tanh(0.5 * x) + 1)  # no overflow for large |x|
