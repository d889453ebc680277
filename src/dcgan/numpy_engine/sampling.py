"""Sampling with the NumPy engine: load G (EMA if present) and D from a run of either engine,
plain samples and discriminator-ranked "nice" samples, with the torch engine's latents per seed.

The same seed gives the same z as `dcgan.sampling` (both use `draw.latents`), so both engines
write the same images from one checkpoint, up to float rounding. No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt
from .. import draw
from ..config import ModelConfig, RunConfig
from ..draw import keep_best, nice_candidates
from ..errors import CheckpointError
from .backend import get_xp, to_numpy
from .models import Discriminator, Generator
from .serialize import model_from_arrays
from .train import generate, to_model_range


@dataclass
class Sampler:
    config: RunConfig
    generator: Generator  # the EMA generator when the run has one
    discriminator: Discriminator
    device: str
    step: int
    path: Path

    @property
    def model(self) -> ModelConfig:
        return self.config.model


def load_sampler(run: Path, device: str = "cpu", which: str = "latest") -> Sampler:
    """Load G (EMA if present) and D from a run directory or a checkpoint file, in eval mode."""
    path = ckpt.find_checkpoint(Path(run), which)
    arrays, meta = ckpt.read_checkpoint(path)
    config = RunConfig.from_dict(meta["config"])
    xp = get_xp(device)
    try:
        generator, discriminator = Generator(config.model, xp), Discriminator(config.model, xp)
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path} has an unusable config ({e})") from None
    g_prefix = (
        "generator_ema" if any(k.startswith("generator_ema.") for k in arrays) else "generator"
    )
    try:
        model_from_arrays(generator, arrays, g_prefix)
        model_from_arrays(discriminator, arrays, "discriminator")
    except (KeyError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path} does not match its config ({str(e).splitlines()[0]})"
        ) from None
    generator.eval()
    discriminator.eval()
    return Sampler(config, generator, discriminator, device, int(meta["step"]), path)


def latents(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """n standard-normal latents float32 (n, latent_dim): `draw.latents`, the same ones
    `dcgan.sampling.latents` gives, prefix-stable."""
    return draw.latents(n, latent_dim, seed)


def auto_batch_size(device: str, image_size: int) -> int:
    """512 at 28/32 px, 128 at 64, 32 at 128 on CPU; four times that on a GPU (as torch's)."""
    base = max(16, 512 * (32 * 32) // max(image_size, 32) ** 2)
    return base * (4 if device != "cpu" else 1)


def sample(s: Sampler, n: int, seed: int, batch_size: int | None = None) -> np.ndarray:
    """n images as uint8 (n, C, H, W)."""
    z = latents(n, s.model.latent_dim, seed)
    return generate(s.generator, z, batch_size or auto_batch_size(s.device, s.model.image_size))


def score(s: Sampler, images_uint8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """D's logits (float64, (N,)) for uint8 images: higher means "more real" to D."""
    xp = s.discriminator.xp
    out = []
    for chunk in np.array_split(images_uint8, max(1, math.ceil(len(images_uint8) / batch_size))):
        logits = s.discriminator(to_model_range(xp.asarray(chunk)))
        out.append(to_numpy(logits).astype(np.float64))
    return np.concatenate(out)


def nice(s: Sampler, n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw n / fraction candidates, keep the n that D scores highest (best first).

    Returns (images uint8 (n, C, H, W), scores (n,)).
    """
    candidates = sample(s, nice_candidates(n, fraction), seed)
    return keep_best(candidates, score(s, candidates), n)
