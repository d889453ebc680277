"""Sampling from a trained run: latents from a seed, plain samples, "nice" discriminator-ranked
samples, latent interpolation and the paper's vector arithmetic.

Everything here takes a run directory or checkpoint file and needs no training flags: the
config travels inside the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import artefact, draw, latent_space, pixels
from .config import ModelConfig, RunConfig
from .draw import keep_best, nice_candidates
from .errors import CheckpointError, UsageError
from .models import build_models
from .torch_engine import generate


@dataclass
class Sampler:
    config: RunConfig
    generator: nn.Module  # the EMA generator when the run has one
    discriminator: nn.Module | None  # None for a generator folder (it holds G only)
    device: torch.device
    step: int
    path: Path

    @property
    def model(self) -> ModelConfig:
        return self.config.model


def load_sampler(
    run: Path, device: torch.device, which: str = "latest", discriminator: bool = True
) -> Sampler:
    """Load G (EMA if present) and D from a run directory, a checkpoint file or a generator
    folder (`artefact`; it has no D), in eval mode. Non-finite weights are a CheckpointError."""
    w = artefact.load(Path(run), which, discriminator)
    generator, d = build_models(w.config.model)
    modules = [(generator, w.generator)]
    if w.discriminator is not None:
        modules.append((d, w.discriminator))
    try:
        for module, arrays in modules:
            module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in arrays.items()})
    except RuntimeError as e:
        raise CheckpointError(
            f"checkpoint {w.path} does not match its config ({str(e).splitlines()[0]})"
        ) from None
    d = d if w.discriminator is not None else None
    for module in (generator, d):
        if module is not None:
            module.to(device).eval()
            if _channels_last(w.config, device):
                module.to(memory_format=torch.channels_last)
    return Sampler(w.config, generator, d, device, w.step, w.path)


def _channels_last(config: RunConfig, device: torch.device) -> bool:
    """NHWC generation, as training uses it: measured on CPU 1.26-1.31x at 28/32/64 px
    (bench/README.md, "Generation"); never on MPS (see train._channels_last)."""
    return config.model.kind == "dcgan" and config.train.channels_last and device.type != "mps"


def latents(
    n: int, latent_dim: int, seed: int, stream: int = draw.USER, truncation: float | None = None
) -> torch.Tensor:
    """n standard-normal latents (n, latent_dim) on the CPU: `draw.latents` (NumPy's PCG64), a
    function of the seed alone, the same on any device and in both engines, and prefix-stable
    (`--num 10` gives the first 10 images of `--num 64`). `truncation` PSI redraws components
    with |z| > PSI (`draw.truncated_latents`)."""
    return torch.from_numpy(draw.truncated_latents(n, latent_dim, seed, truncation, stream))


def auto_batch_size(device: torch.device, image_size: int) -> int:
    """A generation batch that keeps activations modest: 512 at 28/32 px, 128 at 64, 32 at 128 on
    CPU; four times that on a GPU."""
    base = max(16, 512 * (32 * 32) // max(image_size, 32) ** 2)
    return base * (4 if device.type != "cpu" else 1)


def from_latents(s: Sampler, z: np.ndarray | torch.Tensor, batch_size: int | None = None):
    """Images uint8 (N, C, H, W) from latents float32 (N, latent_dim)."""
    z = torch.as_tensor(z, dtype=torch.float32).to(s.device)
    return generate(s.generator, z, batch_size or auto_batch_size(s.device, s.model.image_size))


def sample(
    s: Sampler, n: int, seed: int, batch_size: int | None = None, truncation: float | None = None
) -> np.ndarray:
    """n images as uint8 (n, C, H, W)."""
    return from_latents(s, latents(n, s.model.latent_dim, seed, truncation=truncation), batch_size)


def per_seed(s: Sampler, z: np.ndarray) -> np.ndarray:
    """Images uint8 (N, C, H, W), one forward pass per latent row: a batch's size changes which
    float kernels run, so this keeps each image the same bit for bit whatever else is drawn
    (`--seeds`)."""
    return np.concatenate([from_latents(s, z[i : i + 1]) for i in range(len(z))])


@torch.no_grad()
def score(s: Sampler, images_uint8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """D's logits (float64, (N,)) for uint8 images: higher means "more real" to D."""
    if s.discriminator is None:
        raise UsageError(
            f"--nice ranks samples with the discriminator, and {s.path.parent} is a generator "
            "folder without one; use the run directory or a checkpoint"
        )
    out = []
    for chunk in np.array_split(images_uint8, max(1, math.ceil(len(images_uint8) / batch_size))):
        x = pixels.uint8_to_model(torch.from_numpy(chunk).to(s.device))
        out.append(s.discriminator(x).double().cpu())
    return torch.cat(out).numpy()


def nice_from_latents(
    s: Sampler, z: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of the candidates drawn from latents z, the n that D scores highest, best first:
    (images uint8 (n, C, H, W), scores (n,), their latents (n, latent_dim))."""
    candidates = from_latents(s, z)
    scores = score(s, candidates)
    best = draw.best_indices(scores, n)
    return candidates[best], scores[best], np.asarray(z)[best]


def nice(
    s: Sampler, n: int, fraction: float, seed: int, truncation: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The keras-dcgan "nice" mode: draw n / fraction candidates, keep the n that D scores highest.

    Returns (images uint8 (n, C, H, W), scores (n,)), best first.
    """
    candidates = sample(s, nice_candidates(n, fraction), seed, truncation=truncation)
    return keep_best(candidates, score(s, candidates), n)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents a and b (D,) at fractions t (T,) -> (T, D)
    (`latent_space.slerp`, which both engines use)."""
    return torch.from_numpy(latent_space.slerp(a.numpy(), b.numpy(), t.numpy()))


def interpolate(
    s: Sampler, rows: int, steps: int, seed: int, truncation: float | None = None
) -> np.ndarray:
    """`rows` interpolations of `steps` images each between random latent pairs (slerp).

    Returns uint8 (rows * steps, C, H, W), row-major, for a grid with `steps` columns.
    """
    ends = draw.truncated_latents(2 * rows, s.model.latent_dim, seed, truncation)
    return from_latents(s, latent_space.interpolation(ends, steps))


def parse_arithmetic(text: str):
    """`latent_space.parse_arithmetic`: "3,7,12 - 5,9 + 1,4" -> ([3, 7, 12], [5, 9], [1, 4])."""
    return latent_space.parse_arithmetic(text)


def arithmetic(
    s: Sampler,
    groups,
    num: int,
    seed: int,
    variants: int = 8,
    noise: float = 0.25,
    truncation: float | None = None,
) -> np.ndarray:
    """The paper's vector arithmetic (section 6.3.2) on the `num` samples that
    `sample(s, num, seed)` draws (`latent_space.arithmetic`).

    Returns uint8 (4 + variants, C, H, W): mean a, mean b, mean c, the result, its variants.
    """
    z = draw.truncated_latents(num, s.model.latent_dim, seed, truncation)
    source = f"samples of --num {num} --seed {seed}"
    return from_latents(s, latent_space.arithmetic(z, groups, seed, variants, noise, source))
