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


class ClassAffine(nn.Module):
    """A per-class gain and shift after a BatchNorm (conditional BatchNorm, de Vries et al. 2017,
    as in Miyato & Koyama 2018's generator): x * gain[y] + shift[y] per channel. Gains start at 1
    and shifts at 0, so a fresh conditional G computes what its unconditional twin does.

    y: int64 labels (N,), or float class weights (N, K) that mix the classes' rows (the
    embedding walk of `--interpolate` across classes)."""

    def __init__(self, num_classes: int, channels: int):
        super().__init__()
        self.gain = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        return x * class_rows(self.gain, y).view(shape) + class_rows(self.shift, y).view(shape)


def class_rows(table: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """The rows of `table` for labels y (N,), or their mix for class weights y (N, K)."""
    if y.is_floating_point():
        return y.to(table.weight.dtype) @ table.weight
    return table(y)


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) [, y] -> image (N, channels, S, S) in [-1, 1]
    (`architecture.dcgan_generator_plan`).

    At 64 px with latent 100 and 64 features this is layer for layer the generator of
    pytorch/examples dcgan/main.py (same module indices, so state dicts are interchangeable).
    A conditional G has a `ClassAffine` after each BatchNorm, `classes.<i>` for `main.<i>`.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        plan = architecture.dcgan_generator_plan(cfg)
        self.main = _sequential(plan)
        self.latent_dim = cfg.latent_dim
        self.classes = None
        if cfg.num_classes:
            norms = [i for i, spec in enumerate(plan) if spec.kind == "batch_norm"]
            self.classes = nn.ModuleDict(
                {str(i): ClassAffine(cfg.num_classes, plan[i].n_out) for i in norms}
            )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = z.view(z.shape[0], self.latent_dim, 1, 1)
        if self.classes is None:
            return self.main(x)
        for i, layer in enumerate(self.main):
            x = layer(x)
            if str(i) in self.classes:
                x = self.classes[str(i)](x, y)
        return x


class DCGANDiscriminator(nn.Module):
    """image (N, channels, S, S) [, y] -> logits (N,) (`architecture.dcgan_discriminator_plan`).

    No Sigmoid: the loss works on logits, which is safe under autocast. cfg.d_norm picks the
    normalisation between the convolutions: "batch" (the paper), "layer" (GroupNorm(1)) or "none".
    A conditional D is a projection discriminator (Miyato & Koyama 2018): the logit plus the
    inner product of the class's embedding with D's last feature map summed over space.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        plan = architecture.dcgan_discriminator_plan(cfg)
        self.main = _sequential(plan)
        self.embed = None
        if cfg.num_classes:
            self.embed = nn.Embedding(cfg.num_classes, plan[-1].n_in)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is None:
            return self.main(x).flatten()
        for layer in self.main[:-1]:
            x = layer(x)
        projection = (class_rows(self.embed, y) * x.sum((2, 3)).to(self.embed.weight.dtype)).sum(1)
        return self.main[-1](x).flatten() + projection


class MLPGenerator(nn.Module):
    """z (N, latent_dim) [, y] -> image (N, channels, S, S): the seeds' simple GAN generator
    (`architecture.mlp_generator_plan`), its flat output reshaped to the image. A conditional one
    takes z and the label's embedding side by side, as Mirza & Osindero (2014) did (the
    embedding starts as the one-hot code)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.main = _sequential(architecture.mlp_generator_plan(cfg))
        self.embed = _one_hot_embedding(cfg.num_classes)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = z.reshape(z.shape[0], -1)
        if self.embed is not None:
            x = torch.cat([x, class_rows(self.embed, y).to(x.dtype)], 1)
        return self.main(x).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """image (N, channels, S, S) [, y] -> logits (N,): the seeds' simple GAN discriminator
    (`architecture.mlp_discriminator_plan`) over the flattened pixels (and a conditional one's
    label embedding beside them)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.main = _sequential(architecture.mlp_discriminator_plan(cfg))
        self.embed = _one_hot_embedding(cfg.num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        if self.embed is not None:
            x = torch.cat([x, class_rows(self.embed, y).to(x.dtype)], 1)
        return self.main(x).flatten()


def _one_hot_embedding(num_classes: int) -> nn.Embedding | None:
    if not num_classes:
        return None
    embed = nn.Embedding(num_classes, num_classes)
    nn.init.eye_(embed.weight)
    return embed


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
