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

from .. import artefact, draw
from ..config import ModelConfig, RunConfig
from ..draw import keep_best, nice_candidates
from ..errors import CheckpointError, UsageError
from .backend import get_xp, to_numpy
from .models import Discriminator, Generator
from .train import generate, to_model_range


@dataclass
class Sampler:
    config: RunConfig
    generator: Generator  # the EMA generator when the run has one
    discriminator: Discriminator | None  # None for a generator folder (it holds G only)
    device: str
    step: int
    path: Path

    @property
    def model(self) -> ModelConfig:
        return self.config.model


def load_sampler(
    run: Path, device: str = "cpu", which: str = "latest", discriminator: bool = True
) -> Sampler:
    """Load G (EMA if present) and D from a run directory, a checkpoint file or a generator
    folder (`artefact`; it has no D), in eval mode. Non-finite weights are a CheckpointError."""
    w = artefact.load(Path(run), which, discriminator)
    xp = get_xp(device)
    try:
        generator, d = Generator(w.config.model, xp), Discriminator(w.config.model, xp)
    except ValueError as e:
        raise CheckpointError(f"checkpoint {w.path} has an unusable config ({e})") from None
    try:
        generator.load_state_dict(w.generator)
        if w.discriminator is not None:
            d.load_state_dict(w.discriminator)
    except (KeyError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {w.path} does not match its config ({str(e).splitlines()[0]})"
        ) from None
    generator.eval()
    d.eval()
    d = d if w.discriminator is not None else None
    return Sampler(w.config, generator, d, device, w.step, w.path)


def latents(n: int, latent_dim: int, seed: int, truncation: float | None = None) -> np.ndarray:
    """n standard-normal latents float32 (n, latent_dim): `draw.latents`, the same ones
    `dcgan.sampling.latents` gives, prefix-stable; `truncation` as there."""
    return draw.truncated_latents(n, latent_dim, seed, truncation)


def auto_batch_size(device: str, image_size: int) -> int:
    """512 at 28/32 px, 128 at 64, 32 at 128 on CPU; four times that on a GPU (as torch's)."""
    base = max(16, 512 * (32 * 32) // max(image_size, 32) ** 2)
    return base * (4 if device != "cpu" else 1)


def from_latents(s: Sampler, z: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Images uint8 (N, C, H, W) from latents float32 (N, latent_dim)."""
    z = np.asarray(z, dtype=np.float32)
    return generate(s.generator, z, batch_size or auto_batch_size(s.device, s.model.image_size))


def sample(
    s: Sampler, n: int, seed: int, batch_size: int | None = None, truncation: float | None = None
) -> np.ndarray:
    """n images as uint8 (n, C, H, W)."""
    return from_latents(s, latents(n, s.model.latent_dim, seed, truncation), batch_size)


def per_seed(s: Sampler, z: np.ndarray) -> np.ndarray:
    """Images uint8 (N, C, H, W), one forward pass per latent row, so that each image is the
    same bit for bit whatever else is drawn (as `dcgan.sampling.per_seed`)."""
    return np.concatenate([from_latents(s, z[i : i + 1]) for i in range(len(z))])


def score(s: Sampler, images_uint8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """D's logits (float64, (N,)) for uint8 images: higher means "more real" to D."""
    if s.discriminator is None:
        raise UsageError(
            f"--nice ranks samples with the discriminator, and {s.path.parent} is a generator "
            "folder without one; use the run directory or a checkpoint"
        )
    xp = s.discriminator.xp
    out = []
    for chunk in np.array_split(images_uint8, max(1, math.ceil(len(images_uint8) / batch_size))):
        logits = s.discriminator(to_model_range(xp.asarray(chunk)))
        out.append(to_numpy(logits).astype(np.float64))
    return np.concatenate(out)


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
    """Draw n / fraction candidates, keep the n that D scores highest (best first).

    Returns (images uint8 (n, C, H, W), scores (n,)).
    """
    candidates = sample(s, nice_candidates(n, fraction), seed, truncation=truncation)
    return keep_best(candidates, score(s, candidates), n)
