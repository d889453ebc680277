"""Generator and discriminator networks: the paper's DCGAN at 28/32/64/128 px and the simple MLP GAN.

Pure modules: no I/O, no optimisers, no device choice. Images are float tensors in [-1, 1],
shape (N, C, H, W). Discriminators return raw logits of shape (N,), never probabilities.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import D_NORMS, DCGAN_SIZES, ModelConfig


def _dcgan_plan(image_size: int) -> tuple[int, int]:
    """Return (base, n_up): the side of the first feature map and the number of 2x upsamplings.

    28 px starts from 7x7 (7 -> 14 -> 28); the powers of two start from 4x4, as the paper's nets do.
    """
    if image_size not in DCGAN_SIZES:
        supported = ", ".join(str(s) for s in DCGAN_SIZES)
        raise ValueError(f"DCGAN image size {image_size} is not supported; use one of {supported}")
    base = 7 if image_size == 28 else 4
    return base, int(math.log2(image_size // base))


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> image (N, channels, S, S) in [-1, 1].

    A transposed convolution over the 1x1 latent projects and reshapes z to (g_features * 2^(n-1),
    base, base); each following 4x4 stride-2 transposed convolution doubles the side and halves the
    width. At 64 px with latent 100 and 64 features this is layer for layer the generator of
    pytorch/examples dcgan/main.py (same module indices, so state dicts are interchangeable).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        base, n_up = _dcgan_plan(cfg.image_size)
        width = cfg.g_features * 2 ** (n_up - 1)
        layers: list[nn.Module] = [
            # state size: latent_dim x 1 x 1 -> width x base x base
            nn.ConvTranspose2d(cfg.latent_dim, width, base, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(n_up - 1):
            # state size: width x s x s -> width/2 x 2s x 2s
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        # state size: g_features x S/2 x S/2 -> channels x S x S
        layers += [nn.ConvTranspose2d(width, cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.latent_dim = cfg.latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """image (N, channels, S, S) -> logits (N,).

    4x4 stride-2 convolutions halve the side and double the width down to base x base; the first
    has no normalisation (the paper's rule), every one uses LeakyReLU(0.2). A final base x base
    convolution gives one logit. No Sigmoid: the loss works on logits, which is safe under autocast.
    cfg.d_norm picks the normalisation of the others: "batch" (the paper), "layer" (GroupNorm
    with one group: per sample over C, H, W, so a gradient penalty stays per sample, as
    Gulrajani et al. ask of a WGAN-GP critic) or "none" (those modules are absent).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        base, n_up = _dcgan_plan(cfg.image_size)
        width = cfg.d_features
        layers: list[nn.Module] = [
            # state size: channels x S x S -> d_features x S/2 x S/2
            nn.Conv2d(cfg.channels, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(n_up - 1):
            layers.append(nn.Conv2d(width, width * 2, 4, 2, 1, bias=False))
            layers += _d_norm(cfg.d_norm, width * 2)
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width *= 2
        # state size: width x base x base -> 1 x 1 x 1
        layers.append(nn.Conv2d(width, 1, base, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


def _d_norm(kind: str, width: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(width)]
    if kind == "layer":
        return [nn.GroupNorm(1, width)]
    if kind == "none":
        return []
    raise ValueError(f"unknown d_norm {kind!r}; use one of {', '.join(D_NORMS)}")


class MLPGenerator(nn.Module):
    """The seeds' simple GAN generator: Dense 256-512-1024 (LeakyReLU 0.2, BatchNorm), then Tanh.

    Keras's BatchNormalization(momentum=0.8) keeps 0.8 of the old running mean; PyTorch's momentum
    is the weight of the new batch, so the same behaviour is momentum=0.2.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.shape = (cfg.channels, cfg.image_size, cfg.image_size)
        layers: list[nn.Module] = []
        width_in = cfg.latent_dim
        for width in (cfg.g_features * 4, cfg.g_features * 8, cfg.g_features * 16):
            layers += [
                nn.Linear(width_in, width),
                nn.LeakyReLU(0.2, inplace=True),
                nn.BatchNorm1d(width, momentum=0.2),
            ]
            width_in = width
        layers += [nn.Linear(width_in, math.prod(self.shape)), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], -1)).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """The seeds' simple GAN discriminator: Dense 512-256 with LeakyReLU 0.2, then one logit."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n_in = cfg.channels * cfg.image_size**2
        self.main = nn.Sequential(
            nn.Linear(n_in, cfg.d_features * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(cfg.d_features * 8, cfg.d_features * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(cfg.d_features * 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x.flatten(1)).flatten()


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: weights N(0, 0.02), BatchNorm scale N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every convolution and linear weight, in
    place: the weight used is W / sigma(W), sigma estimated by one power iteration per forward in
    train mode (none in eval mode).

    With `torch.nn.utils.parametrizations.spectral_norm` a layer's state dict holds
    `parametrizations.weight.original` (the trained W) and the power-iteration vectors
    `parametrizations.weight.0._u` / `._v`, which are buffers: they are saved with
    `module.state_dict()`, and an exact resume needs them (sigma and so every logit depends on
    them). The optimiser sees `...original`. Call after init_weights (which writes W itself).
    """
    from torch.nn.utils.parametrizations import spectral_norm

    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            spectral_norm(m)
    return module


def build_models(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """Build (generator, discriminator) for a model config, initialised with the paper's scheme;
    D spectrally normalised when cfg.spectral_norm.

    Initialisation (and spectral norm's first u, v) draws from torch's global RNG, so seed it
    first for reproducible weights.
    """
    if cfg.kind == "dcgan":
        g, d = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    elif cfg.kind == "mlp":
        g, d = MLPGenerator(cfg), MLPDiscriminator(cfg)
    else:
        raise ValueError(f"unknown model kind {cfg.kind!r}; use dcgan or mlp")
    init_weights(g)
    init_weights(d)
    if cfg.spectral_norm:
        apply_spectral_norm(d)
    return g, d
