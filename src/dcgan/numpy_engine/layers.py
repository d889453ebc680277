"""Layers: parameters, their gradients and BatchNorm buffers around the functional ops.

A layer keeps the cache of its last forward for its backward, and accumulates into its gradients
(so D can see the real and the fake batch in turn); `zero_grad` clears them. Activations are
channels-last as in `ops`: (N, H, W, C) and (N, F).
"""

from __future__ import annotations

import numpy as np

from . import ops


class Layer:
    """Base: no parameters, no buffers."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True
        self._cache = None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, need_dx: bool = True, need_dw: bool = True):
        """Gradient of the loss w.r.t. the last forward's input (None if not `need_dx`).

        With `need_dw` the parameter gradients are accumulated into `grads`.
        """
        raise NotImplementedError

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def _accumulate(self, name: str, g) -> None:
        if g is not None:
            self.grads[name] += g

    def _add_param(self, name: str, value) -> None:
        self.params[name] = value
        self.grads[name] = value * 0


class Conv2d(Layer):
    def __init__(self, xp, c_in: int, c_out: int, k: int, stride: int, pad: int, dtype=np.float32):
        super().__init__()
        self.stride, self.pad = stride, pad
        self._add_param("weight", xp.zeros((c_out, c_in, k, k), dtype=dtype))

    def forward(self, x):
        y, self._cache = ops.conv2d_forward(x, self.params["weight"], self.stride, self.pad)
        return y

    def backward(self, dy, need_dx=True, need_dw=True):
        dx, dw = ops.conv2d_backward(dy, self._cache, need_dx, need_dw)
        self._accumulate("weight", dw)
        return dx


class ConvTranspose2d(Layer):
    def __init__(self, xp, c_in: int, c_out: int, k: int, stride: int, pad: int, dtype=np.float32):
        super().__init__()
        self.stride, self.pad = stride, pad
        self._add_param("weight", xp.zeros((c_in, c_out, k, k), dtype=dtype))

    def forward(self, x):
        w = self.params["weight"]
        y, self._cache = ops.conv_transpose2d_forward(x, w, self.stride, self.pad)
        return y

    def backward(self, dy, need_dx=True, need_dw=True):
        dx, dw = ops.conv_transpose2d_backward(dy, self._cache, need_dx, need_dw)
        self._accumulate("weight", dw)
        return dx


class Linear(Layer):
    def __init__(self, xp, f_in: int, f_out: int, dtype=np.float32):
        super().__init__()
        self._add_param("weight", xp.zeros((f_out, f_in), dtype=dtype))
        self._add_param("bias", xp.zeros((f_out,), dtype=dtype))

    def forward(self, x):
        y, self._cache = ops.linear_forward(x, self.params["weight"], self.params["bias"])
        return y

    def backward(self, dy, need_dx=True, need_dw=True):
        dx, dw, db = ops.linear_backward(dy, self._cache, need_dx, need_dw)
        self._accumulate("weight", dw)
        self._accumulate("bias", db)
        return dx


class BatchNorm(Layer):
    """BatchNorm1d/2d over channels-last input; buffers named as torch's state dict."""

    def __init__(
        self, xp, features: int, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32
    ):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self._add_param("weight", xp.ones((features,), dtype=dtype))
        self._add_param("bias", xp.zeros((features,), dtype=dtype))
        self.buffers = {
            "running_mean": xp.zeros((features,), dtype=dtype),
            "running_var": xp.ones((features,), dtype=dtype),
            "num_batches_tracked": xp.zeros((), dtype=np.int64),
        }

    def forward(self, x):
        b = self.buffers
        y, self._cache = ops.batch_norm_forward(
            x,
            self.params["weight"],
            self.params["bias"],
            b["running_mean"],
            b["running_var"],
            self.training,
            self.momentum,
            self.eps,
        )
        if self.training:
            b["num_batches_tracked"] += 1
        return y

    def backward(self, dy, need_dx=True, need_dw=True):
        # dx needs dgamma and dbeta anyway, so they are always computed
        dx, dgamma, dbeta = ops.batch_norm_backward(dy, self._cache)
        if need_dw:
            self._accumulate("weight", dgamma)
            self._accumulate("bias", dbeta)
        return dx if need_dx else None


class ReLU(Layer):
    def forward(self, x):
        y, self._cache = ops.relu_forward(x)
        return y

    def backward(self, dy, need_dx=True, need_dw=True):
        return ops.relu_backward(dy, self._cache)


class LeakyReLU(Layer):
    def __init__(self, slope: float = 0.2):
        super().__init__()
        self.slope = slope

    def forward(self, x):
        y, self._cache = ops.leaky_relu_forward(x, self.slope)
        return y

    def backward(self, dy, need_dx=True, need_dw=True):
        return ops.leaky_relu_backward(dy, self._cache)


class Tanh(Layer):
    def forward(self, x):
        y, self._cache = ops.tanh_forward(x)
        return y

    def backward(self, dy, need_dx=True, need_dw=True):
        return ops.tanh_backward(dy, self._cache)


class Sequential:
    """Layers run in order; their state is named "<index>.<name>" like torch's nn.Sequential."""

    def __init__(self, layers: list[Layer]):
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy, need_dx: bool = True, need_dw: bool = True):
        """Backpropagate `dy`; the first layer's input gradient only if `need_dx`."""
        for i in range(len(self.layers) - 1, -1, -1):
            dy = self.layers[i].backward(dy, need_dx or i > 0, need_dw)
        return dy

    def named(self, kind: str, prefix: str) -> dict[str, np.ndarray]:
        """kind "params", "grads" or "buffers" -> {"<prefix><index>.<name>": array}."""
        out = {}
        for i, layer in enumerate(self.layers):
            for name, value in getattr(layer, kind).items():
                out[f"{prefix}{i}.{name}"] = value
        return out

    def train(self, mode: bool = True) -> None:
        for layer in self.layers:
            layer.training = mode
