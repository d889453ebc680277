"""Re-measuring a generator's BatchNorm statistics on its own weights, for the benchmarks that
compare it with averaging them (bench_ema_bn.py, bench_quality.py --recipe ema=D).

Averaged weights need statistics measured on those weights. Training keeps them by averaging the
buffers like the weights (torch_engine.update_ema); `recalibrate_bn` re-measures them with a few
no-grad train-mode passes instead: bench/README.md "EMA BatchNorm statistics" has the numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from dcgan import draw

# the latents of recalibration: a sampling stream of their own (draw.USER 0, GRID 1, EVAL 2)
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
