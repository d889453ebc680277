"""Generator and discriminator networks: the paper's DCGAN at 28/32/64/128 px and the simple MLP GAN.

Pure modules: no I/O, no optimisers, no device choice. Images are float tensors in [-1, 1],
shape (N, C, H, W). Discriminators return raw logits of shape (N,), never probabilities. Which
layers each net has is `dcgan.architecture`'s plan; this module turns it into torch modules.
"""

from __future__ import annotations

import torch
from torch import nn

from . import architecture
from .architecture import LayerSpec
from .config import ModelConfig


def _module(spec: LayerSpec) -> nn.Module:
    """The torch module of one planned layer. Construction order matters: a weighted layer's
    constructor draws its default init from torch's global RNG."""
    if spec.kind in ("conv", "conv_transpose"):
        conv = nn.Conv2d if spec.kind == "conv" else nn.ConvTranspose2d
        args = (spec.n_in, spec.n_out, spec.kernel, spec.stride, spec.padding)
        return conv(*args, bias=spec.bias)
    if spec.kind == "linear":
        return nn.Linear(spec.n_in, spec.n_out, bias=spec.bias)
    if spec.kind == "batch_norm":
        norm = nn.BatchNorm1d if spec.side is None else nn.BatchNorm2d
        return norm(spec.n_out, eps=spec.eps, momentum=spec.momentum)
    if spec.kind == "group_norm":
        return nn.GroupNorm(1, spec.n_out, eps=spec.eps)  # one group: per sample over C, H, W
    if spec.kind == "relu":
        return nn.ReLU(inplace=True)
    if spec.kind == "leaky_relu":
        return nn.LeakyReLU(spec.slope, inplace=True)
    if spec.kind == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown layer kind {spec.kind!r}")


def _sequential(plan: tuple[LayerSpec, ...]) -> nn.Sequential:
    """`main` of a net: module i is plan[i], so state-dict keys are "main.<i>.<name>"."""
    return nn.Sequential(*(_module(spec) for spec in plan))


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> image (N, channels, S, S) in [-1, 1] (`architecture.dcgan_generator_plan`).

    At 64 px with latent 100 and 64 features this is layer for layer the generator of
    pytorch/examples dcgan/main.py (same module indices, so state dicts are interchangeable).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.main = _sequential(architecture.dcgan_generator_plan(cfg))
        self.latent_dim = cfg.latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """image (N, channels, S, S) -> logits (N,) (`architecture.dcgan_discriminator_plan`).

    No Sigmoid: the loss works on logits, which is safe under autocast. cfg.d_norm picks the
    normalisation between the convolutions: "batch" (the paper), "layer" (GroupNorm(1)) or "none".
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.main = _sequential(architecture.dcgan_discriminator_plan(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


class MLPGenerator(nn.Module):
    """z (N, latent_dim) -> image (N, channels, S, S): the seeds' simple GAN generator
    (`architecture.mlp_generator_plan`), its flat output reshaped to the image."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.main = _sequential(architecture.mlp_generator_plan(cfg))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], -1)).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """image (N, channels, S, S) -> logits (N,): the seeds' simple GAN discriminator
    (`architecture.mlp_discriminator_plan`) over the flattened pixels."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.main = _sequential(architecture.mlp_discriminator_plan(cfg))

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


_NETS = {"dcgan": (DCGANGenerator, DCGANDiscriminator), "mlp": (MLPGenerator, MLPDiscriminator)}


def build_models(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """Build (generator, discriminator) for a model config, initialised with the paper's scheme;
    D spectrally normalised when cfg.spectral_norm.

    Initialisation (and spectral norm's first u, v) draws from torch's global RNG, so seed it
    first for reproducible weights: G is built, then D, then G initialised, then D.
    """
    if cfg.kind not in _NETS:
        raise ValueError(f"unknown model kind {cfg.kind!r}; use dcgan or mlp")
    generator, discriminator = _NETS[cfg.kind]
    g, d = generator(cfg), discriminator(cfg)
    init_weights(g)
    init_weights(d)
    if cfg.spectral_norm:
        apply_spectral_norm(d)
    return g, d
