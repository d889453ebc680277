"""The EMA generator's BatchNorm statistics: averaged weights need statistics measured on those
weights, not the raw generator's running ones (which update_ema copies).

Two cures, measured in bench/README.md ("EMA BatchNorm statistics"): `recalibrate_bn` re-measures
them with a few no-grad train-mode passes (the deployable fix: exact for the weights it is
given), and `update_ema_with_buffers` averages the buffers like the weights during training.
"""

from __future__ import annotations

import torch
from torch import nn

from . import draw

# the latents of recalibration: a sampling stream of their own (user 0, grid 1, eval 2)
RECALIBRATION = 3


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of a module (1d, 2d, Sync), in module order."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(
    generator: nn.Module,
    latent_dim: int,
    n_batches: int = 8,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Replace every BatchNorm's running mean and variance in `generator` by their average over
    n_batches train-mode batches of latents (`draw.latents(n_batches * batch_size, latent_dim,
    seed, RECALIBRATION)`), in place; weights are untouched and the module's mode and each BN's
    momentum are restored. Uses momentum None (PyTorch's cumulative average), so each batch
    counts equally and the result does not depend on the statistics before.

    The batch size matters as it does in training: the running variance is the unbiased batch
    variance averaged over batches, so use the training batch size or larger.
    Returns the generator.
    """
    norms = batch_norms(generator)
    if not norms:
        return generator
    was_training = generator.training
    momenta = [m.momentum for m in norms]
    z_all = torch.from_numpy(draw.latents(n_batches * batch_size, latent_dim, seed, RECALIBRATION))
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        generator.train()
        for z in z_all.to(device).split(batch_size):
            generator(z)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        generator.train(was_training)
    return generator


@torch.no_grad()
def update_ema_with_buffers(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters and for floating buffers (BN
    running mean and variance); integer buffers (num_batches_tracked) are copied."""
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        if b_ema.is_floating_point():
            b_ema.lerp_(b, 1.0 - decay)
        else:
            b_ema.copy_(b)
