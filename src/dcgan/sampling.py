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

from . import checkpoint as ckpt
from . import draw
from .config import ModelConfig, RunConfig
from .draw import keep_best, nice_candidates
from .errors import CheckpointError, UsageError
from .models import build_models
from .torch_engine import generate


@dataclass
class Sampler:
    config: RunConfig
    generator: nn.Module  # the EMA generator when the run has one
    discriminator: nn.Module
    device: torch.device
    step: int
    path: Path

    @property
    def model(self) -> ModelConfig:
        return self.config.model


def load_sampler(run: Path, device: torch.device, which: str = "latest") -> Sampler:
    """Load G (EMA if present) and D from a run directory or a checkpoint file, in eval mode."""
    path = ckpt.find_checkpoint(Path(run), which)
    arrays, meta = ckpt.read_checkpoint(path)
    config = RunConfig.from_dict(meta["config"])
    generator, discriminator = build_models(config.model)
    g_prefix = (
        "generator_ema" if any(k.startswith("generator_ema.") for k in arrays) else "generator"
    )
    try:
        for module, prefix in ((generator, g_prefix), (discriminator, "discriminator")):
            module.load_state_dict(
                {k: torch.from_numpy(v.copy()) for k, v in ckpt.subset(arrays, prefix).items()}
            )
    except RuntimeError as e:
        raise CheckpointError(
            f"checkpoint {path} does not match its config ({str(e).splitlines()[0]})"
        ) from None
    generator.to(device).eval()
    discriminator.to(device).eval()
    if _channels_last(config, device):
        generator.to(memory_format=torch.channels_last)
        discriminator.to(memory_format=torch.channels_last)
    return Sampler(config, generator, discriminator, device, int(meta["step"]), path)


def _channels_last(config: RunConfig, device: torch.device) -> bool:
    """NHWC generation, as training uses it: measured on CPU 1.26-1.31x at 28/32/64 px
    (bench/README.md, "Generation"); never on MPS (see train._channels_last)."""
    return config.model.kind == "dcgan" and config.train.channels_last and device.type != "mps"


def latents(n: int, latent_dim: int, seed: int, stream: int = draw.USER) -> torch.Tensor:
    """n standard-normal latents (n, latent_dim) on the CPU: `draw.latents` (NumPy's PCG64), a
    function of the seed alone, the same on any device and in both engines, and prefix-stable
    (`--num 10` gives the first 10 images of `--num 64`)."""
    return torch.from_numpy(draw.latents(n, latent_dim, seed, stream))


def auto_batch_size(device: torch.device, image_size: int) -> int:
    """A generation batch that keeps activations modest: 512 at 28/32 px, 128 at 64, 32 at 128 on
    CPU; four times that on a GPU."""
    base = max(16, 512 * (32 * 32) // max(image_size, 32) ** 2)
    return base * (4 if device.type != "cpu" else 1)


def sample(s: Sampler, n: int, seed: int, batch_size: int | None = None) -> np.ndarray:
    """n images as uint8 (n, C, H, W)."""
    z = latents(n, s.model.latent_dim, seed).to(s.device)
    return generate(s.generator, z, batch_size or auto_batch_size(s.device, s.model.image_size))


@torch.no_grad()
def score(s: Sampler, images_uint8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """D's logits (float64, (N,)) for uint8 images: higher means "more real" to D."""
    out = []
    for chunk in np.array_split(images_uint8, max(1, math.ceil(len(images_uint8) / batch_size))):
        x = torch.from_numpy(chunk).to(s.device).float().mul_(2 / 255).sub_(1)
        out.append(s.discriminator(x).double().cpu())
    return torch.cat(out).numpy()


def nice(s: Sampler, n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The keras-dcgan "nice" mode: draw n / fraction candidates, keep the n that D scores highest.

    Returns (images uint8 (n, C, H, W), scores (n,)), best first.
    """
    candidates = sample(s, nice_candidates(n, fraction), seed)
    return keep_best(candidates, score(s, candidates), n)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents a and b (D,) at fractions t (T,) -> (T, D)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, t[:, None])
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / so


def interpolate(s: Sampler, rows: int, steps: int, seed: int) -> np.ndarray:
    """`rows` interpolations of `steps` images each between random latent pairs (slerp).

    Returns uint8 (rows * steps, C, H, W), row-major, for a grid with `steps` columns.
    """
    ends = latents(2 * rows, s.model.latent_dim, seed)
    t = torch.linspace(0, 1, steps)
    z = torch.cat([slerp(ends[2 * r], ends[2 * r + 1], t) for r in range(rows)])
    return generate(s.generator, z.to(s.device))


def parse_arithmetic(text: str) -> tuple[list[int], list[int], list[int]]:
    """Parse "3,7,12 - 5,9 + 1,4" into ([3, 7, 12], [5, 9], [1, 4]): the sample indices of the
    groups a, b and c of a - b + c."""
    import re

    m = re.fullmatch(r"\s*([\d,\s]+?)\s*-\s*([\d,\s]+?)\s*\+\s*([\d,\s]+?)\s*", text)
    groups = []
    for part in m.groups() if m else ():
        items = [x for x in re.split(r"[,\s]+", part.strip()) if x]
        groups.append([int(x) for x in items])
    if len(groups) != 3 or not all(groups):
        raise UsageError(
            f'--arithmetic wants "A - B + C", each a comma-separated list of sample indices '
            f'(e.g. "3,7,12 - 5,9 + 1,4"), got "{text}"'
        )
    return groups[0], groups[1], groups[2]


def arithmetic(
    s: Sampler,
    groups: tuple[list[int], list[int], list[int]],
    num: int,
    seed: int,
    variants: int = 8,
    noise: float = 0.25,
) -> np.ndarray:
    """The paper's vector arithmetic (section 6.3.2): the latents of `groups` (indices into the
    `num` samples that `sample(s, num, seed)` draws) are averaged per group, and the result
    z_a - z_b + z_c is drawn plain and with `variants` uniform perturbations of +-`noise`, as
    the paper's figure 7 does.

    Returns uint8 (4 + variants, C, H, W): mean a, mean b, mean c, the result, its variants.
    """
    for index in (i for g in groups for i in g):
        if not 0 <= index < num:
            raise UsageError(
                f"--arithmetic index {index} is not among the {num} samples of --num {num} "
                f"--seed {seed} (0..{num - 1})"
            )
    z = latents(num, s.model.latent_dim, seed)
    a, b, c = (z[g].mean(0) for g in groups)
    result = a - b + c
    g = torch.Generator().manual_seed(seed + 1)
    jitter = (torch.rand(variants, z.shape[1], generator=g) * 2 - 1) * noise
    return generate(
        s.generator, torch.cat([torch.stack([a, b, c, result]), result + jitter]).to(s.device)
    )
