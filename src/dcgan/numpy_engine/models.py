"""The DCGAN and MLP generator/discriminator of `dcgan.models`, in NumPy, with the same state-dict keys
(both are built from `dcgan.architecture`'s layer plan).

Public inputs and outputs use torch's layouts: z (N, latent_dim), images (N, C, S, S) in [-1, 1],
logits (N,). Inside, activations are channels-last (see `ops`). No I/O and no optimiser here.
"""

from __future__ import annotations

import numpy as np

from ..architecture import LayerSpec, discriminator_plan, generator_plan
from ..config import ModelConfig
from .backend import get_xp
from .layers import (
    BatchNorm,
    Conv2d,
    ConvTranspose2d,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Tanh,
)


def _layer(xp, spec: LayerSpec, dtype) -> Layer:
    """The NumPy layer of one planned layer (`dcgan.architecture`), zero-initialised."""
    if spec.kind in ("conv", "conv_transpose"):
        conv = Conv2d if spec.kind == "conv" else ConvTranspose2d
        return conv(xp, spec.n_in, spec.n_out, spec.kernel, spec.stride, spec.padding, dtype)
    if spec.kind == "linear":
        return Linear(xp, spec.n_in, spec.n_out, dtype)
    if spec.kind == "batch_norm":
        return BatchNorm(xp, spec.n_out, momentum=spec.momentum, eps=spec.eps, dtype=dtype)
    if spec.kind == "relu":
        return ReLU()
    if spec.kind == "leaky_relu":
        return LeakyReLU(spec.slope)
    if spec.kind == "tanh":
        return Tanh()
    # GroupNorm (d_norm "layer") is torch-only; RunConfig.validate refuses it with this engine
    raise ValueError(f"the numpy engine has no {spec.kind!r} layer; use the torch engine")


def _sequential(xp, plan: tuple[LayerSpec, ...], dtype) -> Sequential:
    """Layer i is plan[i], so state-dict keys are torch's "main.<i>.<name>"."""
    return Sequential([_layer(xp, spec, dtype) for spec in plan])


class Model:
    """A `main` Sequential with torch-style state dicts, train/eval mode and gradients."""

    main: Sequential

    def __init__(self, xp, dtype):
        self.xp, self.dtype = xp, dtype

    def parameters(self) -> dict[str, np.ndarray]:
        """{state-dict key: parameter array}; arrays are updated in place by the optimiser."""
        return self.main.named("params", "main.")

    def gradients(self) -> dict[str, np.ndarray]:
        """{state-dict key: gradient array}, same keys as `parameters()`."""
        return self.main.named("grads", "main.")

    def zero_grad(self) -> None:
        for layer in self.main.layers:
            layer.zero_grad()

    def train(self, mode: bool = True) -> Model:
        self.main.train(mode)
        return self

    def eval(self) -> Model:
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers under torch's keys, e.g. "main.1.running_mean" (live arrays)."""
        out = {}
        for i, layer in enumerate(self.main.layers):
            for name, value in {**layer.params, **layer.buffers}.items():
                out[f"main.{i}.{name}"] = value
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays (NumPy or the engine's module) in; keys and shapes must match exactly."""
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
        for key, target in own.items():
            value = self.xp.asarray(state[key])
            if value.shape == (1,) and target.shape == ():
                value = value.reshape(())  # a scalar buffer stored as 1-d (as torch accepts)
            if value.shape != target.shape:
                raise ValueError(f"{key}: shape {value.shape} does not match {target.shape}")
            target[...] = value

    def init_weights(self, rng: np.random.Generator) -> None:
        """The paper's init from `rng`: weights N(0, 0.02), BN scale N(1, 0.02), biases 0."""
        for layer in self.main.layers:
            if isinstance(layer, (Conv2d, ConvTranspose2d, Linear)):
                self._fill(layer, "weight", rng.normal(0.0, 0.02, layer.params["weight"].shape))
                if "bias" in layer.params:
                    layer.params["bias"][...] = 0
            elif isinstance(layer, BatchNorm):
                self._fill(layer, "weight", rng.normal(1.0, 0.02, layer.params["weight"].shape))
                layer.params["bias"][...] = 0

    def _fill(self, layer: Layer, name: str, value: np.ndarray) -> None:
        layer.params[name][...] = self.xp.asarray(value.astype(self.dtype))


class Generator(Model):
    """z (N, latent_dim) -> images (N, C, S, S). `backward` takes d(loss)/d(images)."""

    def __init__(self, cfg: ModelConfig, xp=None, dtype=np.float32):
        super().__init__(xp or get_xp(), dtype)
        self.kind, self.latent_dim = cfg.kind, cfg.latent_dim
        self.shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.main = _sequential(self.xp, generator_plan(cfg), dtype)

    def forward(self, z):
        n = z.shape[0]
        h = z.reshape(n, self.latent_dim).astype(self.dtype, copy=False)
        if self.kind == "dcgan":
            h = h.reshape(n, 1, 1, self.latent_dim)
        y = self.main.forward(h)  # (N, S, S, C), or (N, C*S*S) in torch's order for the MLP
        if self.kind == "mlp":
            return y.reshape(n, *self.shape)
        return self.xp.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, dimages, need_dz: bool = False, need_dw: bool = True):
        """dimages (N, C, S, S) -> dz (N, latent_dim) if `need_dz`, else None."""
        n = dimages.shape[0]
        if self.kind == "mlp":
            dy = dimages.reshape(n, -1)
        else:
            dy = self.xp.ascontiguousarray(dimages.transpose(0, 2, 3, 1))
        dz = self.main.backward(dy.astype(self.dtype, copy=False), need_dz, need_dw)
        return None if dz is None else dz.reshape(n, self.latent_dim)

    __call__ = forward


class Discriminator(Model):
    """images (N, C, S, S) -> logits (N,). `backward` takes d(loss)/d(logits)."""

    def __init__(self, cfg: ModelConfig, xp=None, dtype=np.float32):
        super().__init__(xp or get_xp(), dtype)
        self.kind = cfg.kind
        self.main = _sequential(self.xp, discriminator_plan(cfg), dtype)

    def forward(self, images):
        n = images.shape[0]
        self._in_shape = images.shape
        x = images.astype(self.dtype, copy=False)
        if self.kind == "mlp":
            h = x.reshape(n, -1)
        else:
            h = self.xp.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return self.main.forward(h).reshape(n)

    def backward(self, dlogits, need_dx: bool = False, need_dw: bool = True):
        """dlogits (N,) -> d(images) (N, C, S, S) if `need_dx`, else None."""
        n = dlogits.shape[0]
        dy = dlogits.reshape(n, 1) if self.kind == "mlp" else dlogits.reshape(n, 1, 1, 1)
        dx = self.main.backward(dy.astype(self.dtype, copy=False), need_dx, need_dw)
        if dx is None:
            return None
        if self.kind == "mlp":
            return dx.reshape(self._in_shape)
        return self.xp.ascontiguousarray(dx.transpose(0, 3, 1, 2))

    __call__ = forward


def build_models(
    cfg: ModelConfig, rng: np.random.Generator, xp=None, dtype=np.float32
) -> tuple[Generator, Discriminator]:
    """(generator, discriminator) for a config, initialised from `rng` (G first, then D)."""
    if cfg.kind not in ("dcgan", "mlp"):
        raise ValueError(f"unknown model kind {cfg.kind!r}; use dcgan or mlp")
    g, d = Generator(cfg, xp, dtype), Discriminator(cfg, xp, dtype)
    g.init_weights(rng)
    d.init_weights(rng)
    return g, d
