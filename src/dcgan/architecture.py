"""The layer plan of every net: which layers, in which order, at which widths and sides.

Pure Python (no torch, no NumPy), so that the torch models (`dcgan.models`), the NumPy engine's
(`numpy_engine.models`) and the memory estimates (`limits`) are built from one description and
cannot drift apart: a layer's index in the plan is its index in `main` (its state-dict key).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import D_NORMS, DCGAN_SIZES, ModelConfig

WEIGHTED = ("conv", "conv_transpose", "linear")  # the layers with a weight (N(0, 0.02) at init)
NORMS = ("batch_norm", "group_norm")  # a scale (N(1, 0.02) at init) and a shift per channel
ACTIVATIONS = ("relu", "leaky_relu", "tanh")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a net, engine-free.

    `n_in` -> `n_out` channels (features for "linear"; equal for norms and activations); `side`
    is the output's spatial side, None for flat (N, F) activations. Convolutions are square:
    `kernel` x `kernel`, `stride`, `padding`, as torch's Conv2d / ConvTranspose2d take them.
    """

    kind: str  # one of WEIGHTED + NORMS + ACTIVATIONS
    n_in: int
    n_out: int
    side: int | None = None
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    bias: bool = False
    momentum: float = 0.1  # batch_norm: the new batch's weight in the running stats (torch's)
    eps: float = 1e-5  # norms
    slope: float = 0.2  # leaky_relu: the slope below zero

    @property
    def parameters(self) -> int:
        """Trainable numbers: weight (and bias) of a weighted layer, scale and shift of a norm."""
        if self.kind in WEIGHTED:
            return self.n_in * self.n_out * (self.kernel or 1) ** 2 + (
                self.n_out if self.bias else 0
            )
        return 2 * self.n_out if self.kind in NORMS else 0


def dcgan_sides(image_size: int) -> tuple[int, int]:
    """Return (base, n_up): the side of G's first feature map and the number of 2x upsamplings.

    28 px starts from 7x7 (7 -> 14 -> 28); the powers of two start from 4x4, as the paper's nets do.
    """
    if image_size not in DCGAN_SIZES:
        supported = ", ".join(str(s) for s in DCGAN_SIZES)
        raise ValueError(f"DCGAN image size {image_size} is not supported; use one of {supported}")
    base = 7 if image_size == 28 else 4
    return base, int(math.log2(image_size // base))


def generator_plan(cfg: ModelConfig) -> tuple[LayerSpec, ...]:
    """G's layers for `cfg.kind`: z (N, latent_dim) -> image (N, channels, S, S) in [-1, 1]."""
    return _by_kind(cfg, dcgan_generator_plan, mlp_generator_plan)


def discriminator_plan(cfg: ModelConfig) -> tuple[LayerSpec, ...]:
    """D's layers for `cfg.kind`: image (N, channels, S, S) -> one logit per image."""
    return _by_kind(cfg, dcgan_discriminator_plan, mlp_discriminator_plan)


def _by_kind(cfg: ModelConfig, dcgan, mlp) -> tuple[LayerSpec, ...]:
    if cfg.kind == "dcgan":
        return dcgan(cfg)
    if cfg.kind == "mlp":
        return mlp(cfg)
    raise ValueError(f"unknown model kind {cfg.kind!r}; use dcgan or mlp")


def dcgan_generator_plan(cfg: ModelConfig) -> tuple[LayerSpec, ...]:
    """A transposed convolution over the 1x1 latent projects and reshapes z to (g_features *
    2^(n_up-1), base, base); each following 4x4 stride-2 transposed convolution doubles the side
    and halves the width. At 64 px, latent 100, 64 features: pytorch/examples dcgan/main.py's G."""
    base, n_up = dcgan_sides(cfg.image_size)
    width, side = cfg.g_features * 2 ** (n_up - 1), base
    # state size: latent_dim x 1 x 1 -> width x base x base
    plan = [LayerSpec("conv_transpose", cfg.latent_dim, width, side, kernel=base)]
    plan += [_same("batch_norm", width, side), _same("relu", width, side)]
    for _ in range(n_up - 1):
        # state size: width x s x s -> width/2 x 2s x 2s
        width, side = width // 2, side * 2
        plan += [_stride2("conv_transpose", width * 2, width, side)]
        plan += [_same("batch_norm", width, side), _same("relu", width, side)]
    # state size: g_features x S/2 x S/2 -> channels x S x S
    plan += [_stride2("conv_transpose", width, cfg.channels, side * 2)]
    return (*plan, _same("tanh", cfg.channels, side * 2))


def dcgan_discriminator_plan(cfg: ModelConfig) -> tuple[LayerSpec, ...]:
    """4x4 stride-2 convolutions halve the side and double the width down to base x base, each
    followed by LeakyReLU(0.2); the first has no normalisation (the paper's rule), the others
    `cfg.d_norm`'s. A final base x base convolution gives one logit (no Sigmoid: losses take
    logits)."""
    base, n_up = dcgan_sides(cfg.image_size)
    width, side = cfg.d_features, cfg.image_size // 2
    # state size: channels x S x S -> d_features x S/2 x S/2
    plan = [_stride2("conv", cfg.channels, width, side), _same("leaky_relu", width, side)]
    for _ in range(n_up - 1):
        # state size: width x s x s -> 2 width x s/2 x s/2
        width, side = width * 2, side // 2
        plan += [_stride2("conv", width // 2, width, side), *_d_norm(cfg.d_norm, width, side)]
        plan += [_same("leaky_relu", width, side)]
    # state size: width x base x base -> 1 x 1 x 1
    return (*plan, LayerSpec("conv", width, 1, 1, kernel=base))


def _d_norm(kind: str, width: int, side: int) -> list[LayerSpec]:
    """D's normalisation: "batch" (the paper), "layer" (GroupNorm with one group: per sample over
    C, H, W, so a gradient penalty stays per sample, as Gulrajani et al. ask of a WGAN-GP critic)
    or "none" (no module at all)."""
    if kind == "batch":
        return [_same("batch_norm", width, side)]
    if kind == "layer":
        return [_same("group_norm", width, side)]
    if kind == "none":
        return []
    raise ValueError(f"unknown d_norm {kind!r}; use one of {', '.join(D_NORMS)}")


def mlp_generator_plan(cfg: ModelConfig) -> tuple[LayerSpec, ...]:
    """The seeds' simple GAN generator: Dense 4-8-16 x g_features (LeakyReLU 0.2, BatchNorm),
    then Dense to the pixels and Tanh.

    Keras's BatchNormalization(momentum=0.8) keeps 0.8 of the old running mean; torch's momentum
    is the weight of the new batch, so the same behaviour is momentum=0.2."""
    plan: list[LayerSpec] = []
    width_in = cfg.latent_dim + cfg.num_classes  # a conditional G: z and the label's embedding
    for width in (cfg.g_features * 4, cfg.g_features * 8, cfg.g_features * 16):
        plan += [LayerSpec("linear", width_in, width, bias=True), _same("leaky_relu", width)]
        plan += [LayerSpec("batch_norm", width, width, momentum=0.2)]
        width_in = width
    pixels = cfg.channels * cfg.image_size**2
    return (*plan, LayerSpec("linear", width_in, pixels, bias=True), _same("tanh", pixels))


def mlp_discriminator_plan(cfg: ModelConfig) -> tuple[LayerSpec, ...]:
    """The seeds' simple GAN discriminator: Dense 8-4 x d_features with LeakyReLU 0.2, then one
    logit."""
    pixels = cfg.channels * cfg.image_size**2 + cfg.num_classes  # conditional: and the label's
    widths = (pixels, cfg.d_features * 8, cfg.d_features * 4)
    plan: list[LayerSpec] = []
    for n_in, n_out in zip(widths, widths[1:]):
        plan += [LayerSpec("linear", n_in, n_out, bias=True), _same("leaky_relu", n_out)]
    return (*plan, LayerSpec("linear", widths[-1], 1, bias=True))


def _stride2(kind: str, n_in: int, n_out: int, side: int) -> LayerSpec:
    # 4x4, stride 2, padding 1: exactly doubles (transposed) or halves (conv) an even side
    return LayerSpec(kind, n_in, n_out, side, kernel=4, stride=2, padding=1)


def _same(kind: str, width: int, side: int | None = None) -> LayerSpec:
    """A layer that keeps its input's shape: a norm or an activation."""
    return LayerSpec(kind, width, width, side)


def parameter_count(plan: tuple[LayerSpec, ...]) -> int:
    """Trainable numbers of a net (what the optimiser updates; BatchNorm's buffers excluded)."""
    return sum(spec.parameters for spec in plan)


def hidden_maps(plan: tuple[LayerSpec, ...]) -> list[tuple[int, int]]:
    """(width, side) of each weighted layer's output but the last (side 1 for flat features):
    the hidden feature maps, first to last."""
    weighted = [spec for spec in plan if spec.kind in WEIGHTED]
    return [(spec.n_out, spec.side or 1) for spec in weighted[:-1]]
