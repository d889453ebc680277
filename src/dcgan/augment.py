"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout applied to every
image D sees, real and fake, so a small set cannot be memorised by D and G still gets gradients.

Randomness is a function, not a state: the per-image parameters come from a NumPy Generator the
caller makes (`augment_rng(seed, step, critic, purpose)` is the one training uses), are drawn on
the host (a few numbers per image) and moved to the batch's device, so the same seed gives the
same augmentation on every device and no global RNG is touched. Images are model-range floats
(N, C, H, W) in [-1, 1]; the outputs may leave that range (brightness, contrast), as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import UsageError

Tensor = torch.Tensor

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125  # the largest shift, as a share of the side (the paper's 1/8)
CUTOUT_RATIO = 0.5  # the side of the zeroed square, as a share of the image side

# purposes of augmentation draws for one (seed, step, critic): real and fake apart, and G's
# step apart from D's, as the paper augments each D call independently
REAL, FAKE, G_FAKE = 0, 1, 2
_AUGMENT = 0x6175_676D  # "augm": keeps these streams apart from draw.py's training streams


def parse_policy(policy: str) -> tuple[str, ...]:
    """ "color,translation,cutout" -> ("color", "translation", "cutout"); "" -> (). Unknown names
    are a UsageError naming the known ones."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise UsageError(f"augment policy {name!r} is not one of {', '.join(POLICIES)}")
    if len(set(names)) != len(names):
        raise UsageError(f"augment policy {policy!r} names a transform twice")
    return names


def augment_rng(seed: int, step: int, critic: int, purpose: int) -> np.random.Generator:
    """The generator of the augmentation of one D input: a pure function of (seed, step, critic
    index, purpose), PCG64 like dcgan.draw, so resume and any device see the same draws."""
    return np.random.default_rng([_AUGMENT, seed, step, critic, purpose])


@dataclass(frozen=True)
class AugmentParams:
    """Pre-drawn per-image parameters (host arrays, length N); None for a transform not used."""

    brightness: np.ndarray | None = None  # added, uniform in [-0.5, 0.5)
    saturation: np.ndarray | None = None  # factor on the distance from the grey, in [0, 2)
    contrast: np.ndarray | None = None  # factor on the distance from the mean, in [0.5, 1.5)
    shift: np.ndarray | None = None  # (N, 2) int (dy, dx) in [-s, s], s = round(side / 8)
    cutout: np.ndarray | None = None  # (N, 2) int centres (cy, cx) of the zeroed square

    def shard(self, rank: int, world: int) -> AugmentParams:
        """This rank's rows of parameters drawn for the global batch (as draw.shard does for z),
        so N ranks augment exactly as one process does."""
        per = next(len(a) for a in vars(self).values() if a is not None) // world
        rows = slice(rank * per, (rank + 1) * per)
        return AugmentParams(**{k: None if a is None else a[rows] for k, a in vars(self).items()})


def draw_params(
    policy: str | tuple[str, ...], n: int, channels: int, height: int, width: int, rng
) -> AugmentParams:
    """The random parameters of `policy` for n images, in a fixed order per transform."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    p: dict[str, np.ndarray] = {}
    if "color" in names:
        p["brightness"] = rng.random(n) - 0.5
        if channels > 1:  # a grey image has no saturation to change
            p["saturation"] = rng.random(n) * 2.0
        p["contrast"] = rng.random(n) + 0.5
    if "translation" in names:
        sy, sx = _round(height * TRANSLATION_RATIO), _round(width * TRANSLATION_RATIO)
        p["shift"] = np.stack([rng.integers(-sy, sy + 1, n), rng.integers(-sx, sx + 1, n)], axis=1)
    if "cutout" in names:
        ch, cw = _round(height * CUTOUT_RATIO), _round(width * CUTOUT_RATIO)
        # the paper's range: an even-sided square may sit half outside on either edge
        p["cutout"] = np.stack(
            [rng.integers(0, height + 1 - ch % 2, n), rng.integers(0, width + 1 - cw % 2, n)],
            axis=1,
        )
    return AugmentParams(**p)


def apply_params(x: Tensor, params: AugmentParams) -> Tensor:
    """Augment a batch (N, C, H, W) with pre-drawn parameters; differentiable in x."""

    def per_image(a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=x.dtype).to(x.device).view(-1, 1, 1, 1)

    if params.brightness is not None:
        x = x + per_image(params.brightness)
    if params.saturation is not None:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * per_image(params.saturation) + mean
    if params.contrast is not None:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * per_image(params.contrast) + mean
    if params.shift is not None:
        x = translate(x, torch.as_tensor(params.shift).to(x.device))
    if params.cutout is not None:
        x = cutout(x, torch.as_tensor(params.cutout).to(x.device))
    return x


def diff_augment(x: Tensor, policy: str | tuple[str, ...], rng: np.random.Generator) -> Tensor:
    """DiffAugment a model-range batch (N, C, H, W) by `policy`, drawing from `rng` only (a NumPy
    Generator, e.g. `augment_rng(...)`). The empty policy returns x itself."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    if not names:
        return x
    n, c, h, w = x.shape
    return apply_params(x, draw_params(names, n, c, h, w, rng))


def translate(x: Tensor, shift: Tensor) -> Tensor:
    """Move image i by shift[i] = (dy, dx) pixels, filling with zeros: out[i, :, y, x] =
    x[i, :, y + dy, x + dx] where that lies inside, else 0 (the paper's convention)."""
    n, _, h, w = x.shape
    pad = int(shift.abs().max()) if shift.numel() else 0
    if pad == 0:
        return x
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = torch.arange(h, device=x.device)[None, :] + shift[:, :1] + pad  # (N, H)
    cols = torch.arange(w, device=x.device)[None, :] + shift[:, 1:] + pad  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indices around a slice put their dims first: (N, H, W, C)
    return xp[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(x: Tensor, centre: Tensor) -> Tensor:
    """Zero a square of side round(side * CUTOUT_RATIO) centred at centre[i] = (cy, cx) in image
    i (clipped at the edges), as the paper's rand_cutout does."""
    _, _, h, w = x.shape
    ch, cw = _round(h * CUTOUT_RATIO), _round(w * CUTOUT_RATIO)
    top, left = centre[:, :1] - ch // 2, centre[:, 1:] - cw // 2  # (N, 1)
    ys, xs = torch.arange(h, device=x.device)[None, :], torch.arange(w, device=x.device)[None, :]
    in_rows = (ys >= top) & (ys < top + ch)  # (N, H)
    in_cols = (xs >= left) & (xs < left + cw)  # (N, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (N, H, W)
    return x * keep[:, None].to(x.dtype)


def _round(v: float) -> int:
    return int(v + 0.5)  # the paper's int(side * ratio + 0.5)
