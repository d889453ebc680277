"""Sampling from a trained run, written once for both engines: latents from a seed, plain
samples, "nice" discriminator-ranked samples, latent interpolation and the paper's vector
arithmetic.

Everything here takes a run directory, checkpoint file or generator folder and needs no training
flags: the config travels with the weights. The engine (`dcgan.engines.Engine`: load_models,
generate, score) runs the networks; the latents are `dcgan.draw`'s, the same on every engine and
device, so the same seed gives the same images from either engine up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import artefact, draw, latent_space
from .config import ModelConfig, RunConfig
from .draw import nice_candidates
from .engines import get_engine
from .errors import CheckpointError, UsageError


@dataclass
class Sampler:
    config: RunConfig
    engine: Any  # the engine module that runs the networks
    generator: Any  # the EMA generator when the run has one
    discriminator: Any  # None for a generator folder (it holds G only)
    device: Any
    step: int
    path: Path

    @property
    def model(self) -> ModelConfig:
        return self.config.model


def load_sampler(
    run: Path,
    device: Any = "auto",
    which: str = "latest",
    discriminator: bool = True,
    engine: str = "torch",
) -> Sampler:
    """Load G (EMA if present) and D from a run directory, a checkpoint file or a generator
    folder (`artefact`; it has no D), in eval mode, on the named engine (either reads both
    engines' files) and device (a name, or the engine's device object). Non-finite weights or
    a mismatch with the config are a CheckpointError."""
    eng = get_engine(engine)
    dev = eng.resolve_device(device) if isinstance(device, str) else device
    w = artefact.load(Path(run), which, discriminator)
    try:
        generator, d = eng.load_models(w.config, w.generator, w.discriminator, dev)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {w.path} {e}") from None
    return Sampler(w.config, eng, generator, d, dev, w.step, w.path)


def latents(
    n: int, latent_dim: int, seed: int, stream: int = draw.USER, truncation: float | None = None
) -> np.ndarray:
    """n standard-normal latents float32 (n, latent_dim): `draw.latents` (NumPy's PCG64), a
    function of the seed alone, the same on any device and in both engines, and prefix-stable
    (`--num 10` gives the first 10 images of `--num 64`). `truncation` PSI redraws components
    with |z| > PSI (`draw.truncated_latents`)."""
    return draw.truncated_latents(n, latent_dim, seed, truncation, stream)


def auto_batch_size(device: Any, image_size: int) -> int:
    """A generation batch that keeps activations modest: 512 at 28/32 px, 128 at 64, 32 at 128 on
    CPU; four times that on a GPU."""
    base = max(16, 512 * (32 * 32) // max(image_size, 32) ** 2)
    on_cpu = str(device).split(":")[0] == "cpu"
    return base * (1 if on_cpu else 4)


def from_latents(
    s: Sampler, z: np.ndarray, batch_size: int | None = None, labels: np.ndarray | None = None
) -> np.ndarray:
    """Images uint8 (N, C, H, W) from latents float32 (N, latent_dim); a conditional run's also
    from labels int64 (N,) (or class weights float32 (N, K)), which it requires."""
    z = np.asarray(z, dtype=np.float32)
    batch = batch_size or auto_batch_size(s.device, s.model.image_size)
    return s.engine.generate(s.generator, z, batch, labels=check_labels(s, labels, len(z)))


def sample(
    s: Sampler,
    n: int,
    seed: int,
    batch_size: int | None = None,
    truncation: float | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """n images as uint8 (n, C, H, W) (of the classes `labels` (n,) for a conditional run)."""
    z = latents(n, s.model.latent_dim, seed, truncation=truncation)
    return from_latents(s, z, batch_size, labels)


def per_seed(s: Sampler, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Images uint8 (N, C, H, W), one forward pass per latent row: a batch's size changes which
    float kernels run, so this keeps each image the same bit for bit whatever else is drawn
    (`--seeds`)."""
    y = [None] * len(z) if labels is None else [labels[i : i + 1] for i in range(len(z))]
    return np.concatenate([from_latents(s, z[i : i + 1], labels=y[i]) for i in range(len(z))])


def score(
    s: Sampler, images_uint8: np.ndarray, batch_size: int = 512, labels: np.ndarray | None = None
) -> np.ndarray:
    """D's logits (float64, (N,)) for uint8 images: higher means "more real" to D (as the
    classes `labels` for a conditional run)."""
    if s.discriminator is None:
        raise UsageError(
            f"--nice ranks samples with the discriminator, and {s.path.parent} is a generator "
            "folder without one; use the run directory or a checkpoint"
        )
    labels = check_labels(s, labels, len(images_uint8))
    return s.engine.score(s.discriminator, images_uint8, batch_size, labels=labels)


def nice_from_latents(
    s: Sampler, z: np.ndarray, n: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of the candidates drawn from latents z (of classes `labels`), the n that D scores highest,
    best first: (images uint8 (n, C, H, W), scores (n,), their latents (n, latent_dim))."""
    candidates = from_latents(s, z, labels=labels)
    scores = score(s, candidates, labels=labels)
    best = draw.best_indices(scores, n)
    return candidates[best], scores[best], np.asarray(z)[best]


def nice(
    s: Sampler,
    n: int,
    fraction: float,
    seed: int,
    truncation: float | None = None,
    label: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The keras-dcgan "nice" mode: draw n / fraction candidates, keep the n that D scores highest
    (a conditional run's of class `label`, ranked within it).

    Returns (images uint8 (n, C, H, W), scores (n,)), best first.
    """
    z = latents(nice_candidates(n, fraction), s.model.latent_dim, seed, truncation=truncation)
    return nice_from_latents(s, z, n, _same(label, len(z)))[:2]


def interpolate(
    s: Sampler,
    rows: int,
    steps: int,
    seed: int,
    truncation: float | None = None,
    label: int | None = None,
) -> np.ndarray:
    """`rows` interpolations of `steps` images each between random latent pairs (slerp,
    `latent_space.interpolation`), within class `label` for a conditional run.

    Returns uint8 (rows * steps, C, H, W), row-major, for a grid with `steps` columns.
    """
    ends = draw.truncated_latents(2 * rows, s.model.latent_dim, seed, truncation)
    return from_latents(
        s, latent_space.interpolation(ends, steps), labels=_same(label, rows * steps)
    )


def arithmetic(
    s: Sampler,
    groups,
    num: int,
    seed: int,
    variants: int = 8,
    noise: float = 0.25,
    truncation: float | None = None,
    label: int | None = None,
) -> np.ndarray:
    """The paper's vector arithmetic (section 6.3.2) on the `num` samples that
    `sample(s, num, seed)` draws (`latent_space.arithmetic`).

    Returns uint8 (4 + variants, C, H, W): mean a, mean b, mean c, the result, its variants.
    """
    z = draw.truncated_latents(num, s.model.latent_dim, seed, truncation)
    source = f"samples of --num {num} --seed {seed}"
    out = latent_space.arithmetic(z, groups, seed, variants, noise, source)
    return from_latents(s, out, labels=_same(label, len(out)))


def _same(label: int | None, n: int) -> np.ndarray | None:
    return None if label is None else np.full(n, label, np.int64)


def cycled_labels(n: int, num_classes: int) -> np.ndarray | None:
    """Labels for n images of a conditional run that take the classes in turn (image i is class
    i mod K), so every class has an equal share; None for an unconditional run."""
    return np.arange(n, dtype=np.int64) % num_classes if num_classes else None


def _no_classes(s: Sampler) -> UsageError:
    return UsageError(f"--class needs a conditional run; {s.path} was trained without classes")


def check_labels(s: Sampler, labels, n: int):
    """Labels for n images: required (int64 (n,) in range, or float weights (n, K)) by a
    conditional run, refused by an unconditional one; one-line UsageErrors."""
    k = s.model.num_classes
    if labels is None:
        if k:
            raise UsageError(f"{s.path} is a conditional run: name a class (--class, 0..{k - 1})")
        return None
    if not k:
        raise _no_classes(s)
    labels = np.asarray(labels)
    if labels.dtype.kind == "f":
        if labels.shape != (n, k) or not np.isfinite(labels).all():
            raise UsageError(f"class weights must be finite, shape ({n}, {k}), got {labels.shape}")
        return labels.astype(np.float32)
    if (
        labels.shape != (n,)
        or labels.dtype.kind not in "iu"
        or not ((labels >= 0) & (labels < k)).all()
    ):
        raise UsageError(f"labels must be {n} class numbers in 0..{k - 1}")
    return labels.astype(np.int64)


def class_labels(s: Sampler, text: str) -> list[int]:
    """`--class` as class numbers: a name ("cat"), a number ("7": the name first, then the index),
    or "all"; anything else is a one-line UsageError listing the classes."""
    names = s.model.class_names if s.model.conditional else ()
    if not names:
        raise _no_classes(s)
    if text == "all":
        return list(range(len(names)))
    if text in names:
        return [names.index(text)]
    if text.isdigit() and int(text) < len(names):
        return [int(text)]
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise UsageError(f"--class {text!r} is not a class of this run: {shown} (or all)")
