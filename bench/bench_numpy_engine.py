"""Training throughput of the NumPy engine against the seed's im2col approach and the torch engine.

One training iteration = each engine's own `train_step` at batch 64: G makes a batch; one D step
on the real and the fake batch (BCE with logits, Adam); one G step through D (Adam).
img/s = batch size / seconds per iteration.

    .venv/bin/python bench/bench_numpy_engine.py [--rounds 5] [--iters 3] [--threads N] [--skip-seed]

The script re-executes itself without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE: pinning OpenBLAS to
its Haswell kernels halves GEMM speed on this AVX-512 CPU. Every engine runs under the same env
and thread count (--threads sets OpenBLAS's, OpenMP's and torch's; default: all cores). Rounds
are interleaved across engines, so load from other processes hits them alike.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

_BLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=3, help="iterations per round (seed: 1)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-seed", action="store_true")
    return parser.parse_args(argv)


def _clean_env(threads: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _BLAS_PINS + _THREAD_VARS}
    if threads:
        env.update(dict.fromkeys(_THREAD_VARS, str(threads)))
    return env


# BLAS reads these at load time, so the only way to change them is a fresh process
if _clean_env(_parse_args().threads) != dict(os.environ):
    os.execve(sys.executable, [sys.executable, *sys.argv], _clean_env(_parse_args().threads))

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dcgan.config import ModelConfig, RunConfig, TrainConfig  # noqa: E402
from dcgan.perf import cpu_kind  # noqa: E402

BATCH = 64
SEED_NET = ModelConfig(
    image_size=64, channels=3, latent_dim=100, g_features=32, d_features=32, d_norm="batch"
)
DIGITS_NET = ModelConfig(
    image_size=28, channels=1, latent_dim=100, g_features=64, d_features=64, d_norm="batch"
)


def _run_config(cfg: ModelConfig) -> RunConfig:
    # fp32 on both engines (auto would be bf16 for torch on AMX CPUs); the paper's settings, every
    # recipe-owned field given (the recipe would add DiffAugment at 64 px)
    train = TrainConfig(
        batch_size=BATCH, epochs=20, lr_g=2e-4, lr_d=2e-4, n_critic=1, augment="", precision="fp32"
    )
    return RunConfig(model=cfg, train=train).validate()


def numpy_iteration(cfg: ModelConfig):
    """The engine's own `train_step` (with the loop's draws for the step, as in training)."""
    from dcgan.engines import StepInputs
    from dcgan.numpy_engine.train import create_state, train_step

    state = create_state(_run_config(cfg))
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (BATCH, cfg.channels, cfg.image_size, cfg.image_size))
    real = real.astype(np.float32)
    z = _z(cfg)
    return lambda: train_step(state, StepInputs([real], [z]))


def _z(cfg: ModelConfig) -> np.ndarray:
    from dcgan.draw import training_normal

    return training_normal(0, 0, 0, BATCH, cfg.latent_dim)


def torch_iteration(cfg: ModelConfig):
    """`dcgan.torch_engine.train_step` on the CPU (it skips D's weight gradients in the G step
    too)."""
    import torch

    from dcgan.engines import StepInputs
    from dcgan.torch_engine import create_state, train_step

    state = create_state(_run_config(cfg), torch.device("cpu"))
    real = torch.rand(BATCH, cfg.channels, cfg.image_size, cfg.image_size) * 2 - 1
    z = _z(cfg)
    return lambda: train_step(state, StepInputs([real], [z]))


def seed_iteration(cfg: ModelConfig):
    net = SeedDCGAN(cfg, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    real = rng.uniform(-1, 1, (BATCH, cfg.channels, cfg.image_size, cfg.image_size))
    return lambda: net.train_step(real, rng)


# ---------------------------------------------------------------------------------------------
# The seed's approach, rebuilt faithfully: float64, NCHW, im2col/col2im with a Python loop over
# the kernel positions filling a (N, C, k, k, Ho, Wo) buffer, rows = output pixels; every
# gradient computed (also D's weights in the G step and the first layers' input gradients).


def seed_im2col(x, k, s, p):
    n, c, h, w = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    img = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    col = np.zeros((n, c, k, k, ho, wo))
    for y in range(k):
        for x_ in range(k):
            col[:, :, y, x_] = img[:, :, y : y + s * ho : s, x_ : x_ + s * wo : s]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * ho * wo, -1), ho, wo


def seed_col2im(col, shape, k, s, p):
    n, c, h, w = shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    col = col.reshape(n, ho, wo, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * p + s - 1, w + 2 * p + s - 1))
    for y in range(k):
        for x_ in range(k):
            img[:, :, y : y + s * ho : s, x_ : x_ + s * wo : s] += col[:, :, y, x_]
    return img[:, :, p : h + p, p : w + p]


class SeedLayer:
    def __init__(self, kind, w=None, k=4, s=2, p=1):
        self.kind, self.w, self.k, self.s, self.p = kind, w, k, s, p
        self.grads = {}
        if kind == "bn":
            self.gamma, self.beta = np.ones(w), np.zeros(w)

    def params(self):
        if self.kind == "bn":
            return [("gamma", self), ("beta", self)]
        return [("w", self)] if self.w is not None else []

    def forward(self, x):
        self.x = x
        k, s, p = self.k, self.s, self.p
        if self.kind == "conv":
            f = self.w.shape[0]
            self.col, ho, wo = seed_im2col(x, k, s, p)
            out = self.col @ self.w.reshape(f, -1).T
            return out.reshape(x.shape[0], ho, wo, f).transpose(0, 3, 1, 2)
        if self.kind == "convt":
            cin, cout = self.w.shape[:2]
            n, _, h, w = x.shape
            self.x2 = x.transpose(0, 2, 3, 1).reshape(-1, cin)
            col = self.x2 @ self.w.reshape(cin, -1)
            self.out_shape = (n, cout, (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k)
            return seed_col2im(col, self.out_shape, k, s, p)
        if self.kind == "bn":
            mu, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
            self.std = np.sqrt(var + 1e-5)
            self.xn = (x - mu) / self.std
            return self.gamma[None, :, None, None] * self.xn + self.beta[None, :, None, None]
        if self.kind == "relu":
            return np.maximum(x, 0)
        if self.kind == "lrelu":
            return np.where(x > 0, x, 0.2 * x)
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        k, s, p, x = self.k, self.s, self.p, self.x
        if self.kind == "conv":
            f = self.w.shape[0]
            d2 = dy.transpose(0, 2, 3, 1).reshape(-1, f)
            self.grads["w"] = (d2.T @ self.col).reshape(self.w.shape)
            return seed_col2im(d2 @ self.w.reshape(f, -1), x.shape, k, s, p)
        if self.kind == "convt":
            cin = self.w.shape[0]
            col, _, _ = seed_im2col(dy, k, s, p)
            self.grads["w"] = (self.x2.T @ col).reshape(self.w.shape)
            dx = col @ self.w.reshape(cin, -1).T
            return dx.reshape(x.shape[0], x.shape[2], x.shape[3], cin).transpose(0, 3, 1, 2)
        if self.kind == "bn":
            m = x.shape[0] * x.shape[2] * x.shape[3]
            self.grads["beta"] = dy.sum(axis=(0, 2, 3))
            self.grads["gamma"] = (dy * self.xn).sum(axis=(0, 2, 3))
            dxn = dy * self.gamma[None, :, None, None]
            return (
                m * dxn
                - dxn.sum(axis=(0, 2, 3), keepdims=True)
                - self.xn * (dxn * self.xn).sum(axis=(0, 2, 3), keepdims=True)
            ) / (m * self.std)
        if self.kind == "relu":
            return dy * (x > 0)
        if self.kind == "lrelu":
            return np.where(x > 0, dy, 0.2 * dy)
        return dy * (1 - self.y**2)


class SeedNet:
    def __init__(self, layers):
        self.layers = layers
        self.m, self.v, self.t = {}, {}, 0

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def adam(self, lr=2e-4, b1=0.5, b2=0.999, eps=1e-8):
        self.t += 1
        for i, layer in enumerate(self.layers):
            for name, owner in layer.params():
                g, key = layer.grads[name], (i, name)
                self.m[key] = b1 * self.m.get(key, 0) + (1 - b1) * g
                self.v[key] = b2 * self.v.get(key, 0) + (1 - b2) * g * g
                mh, vh = self.m[key] / (1 - b1**self.t), self.v[key] / (1 - b2**self.t)
                setattr(owner, name, getattr(owner, name) - lr * mh / (np.sqrt(vh) + eps))


class SeedDCGAN:
    """The seed's 64 px net: z 100 -> ConvT 256-128-64-32-3, D mirrored, float64."""

    def __init__(self, cfg: ModelConfig, rng):
        widths = [cfg.g_features * 8, cfg.g_features * 4, cfg.g_features * 2, cfg.g_features]
        w = lambda *shape: rng.normal(0, 0.02, shape)
        g = [SeedLayer("convt", w(cfg.latent_dim, widths[0], 4, 4), 4, 1, 0)]
        g += [SeedLayer("bn", widths[0]), SeedLayer("relu")]
        for a, b in itertools.pairwise(widths):
            g += [SeedLayer("convt", w(a, b, 4, 4)), SeedLayer("bn", b), SeedLayer("relu")]
        g += [SeedLayer("convt", w(widths[-1], cfg.channels, 4, 4)), SeedLayer("tanh")]
        dw = widths[::-1]
        d = [SeedLayer("conv", w(dw[0], cfg.channels, 4, 4)), SeedLayer("lrelu")]
        for a, b in itertools.pairwise(dw):
            d += [SeedLayer("conv", w(b, a, 4, 4)), SeedLayer("bn", b), SeedLayer("lrelu")]
        d += [SeedLayer("conv", w(1, dw[-1], 4, 4), 4, 1, 0)]
        self.g, self.d, self.latent_dim = SeedNet(g), SeedNet(d), cfg.latent_dim

    def train_step(self, real, rng):
        n = real.shape[0]
        fake = self.g.forward(rng.standard_normal((n, self.latent_dim, 1, 1)))
        grads = {}
        for images, target in ((real, 1.0), (fake, 0.0)):
            logits = self.d.forward(images).reshape(n)
            self.d.backward(((1 / (1 + np.exp(-logits)) - target) / n).reshape(n, 1, 1, 1))
            for i, layer in enumerate(self.d.layers):
                for name in layer.grads:
                    grads[i, name] = grads.get((i, name), 0) + layer.grads[name]
        for (i, name), value in grads.items():
            self.d.layers[i].grads[name] = value
        self.d.adam()
        logits = self.d.forward(fake).reshape(n)
        dfake = self.d.backward(((1 / (1 + np.exp(-logits)) - 1.0) / n).reshape(n, 1, 1, 1))
        self.g.backward(dfake)
        self.g.adam()


def main() -> None:
    args = _parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"{cpu_kind()}, numpy {np.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), batch {BATCH}, "
        f"load avg before {os.getloadavg()[0]:.2f}"
    )
    cases = [
        ("64px seed baseline (float64)", seed_iteration, SEED_NET),
        ("64px numpy engine", numpy_iteration, SEED_NET),
        ("64px torch engine", torch_iteration, SEED_NET),
        ("28px numpy engine", numpy_iteration, DIGITS_NET),
        ("28px torch engine", torch_iteration, DIGITS_NET),
    ]
    cases = [c for c in cases if not (args.skip_seed and "seed" in c[0])]
    steps = {name: make(cfg) for name, make, cfg in cases}
    for step in steps.values():
        step()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            iters = 1 if "seed" in name else args.iters
            t = time.perf_counter()
            for _ in range(iters):
                step()
            rates[name].append(BATCH * iters / (time.perf_counter() - t))
    med = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in rates.items():
        runs = " ".join(f"{v:.0f}" for v in r)
        print(f"{name:30s} median {med[name]:6.1f} img/s, best {max(r):6.1f} (runs: {runs})")
    print(f"load avg after {os.getloadavg()[0]:.2f}")
    for size in ("64px", "28px"):
        ratio = med[f"{size} numpy engine"] / med[f"{size} torch engine"]
        print(f"{size} numpy / torch: {ratio:.2f}x")
    if not args.skip_seed:
        ratio = med["64px numpy engine"] / med["64px seed baseline (float64)"]
        print(f"64px numpy / seed baseline: {ratio:.2f}x")


if __name__ == "__main__":
    main()
