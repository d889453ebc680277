"""Latents as data, torch-free and shared by both engines: .npy latent files in and out (checked,
never unpickled), slerp walks, the paper's vector arithmetic, and `--seeds` lists.

Every function maps float32 latents (N, latent_dim) to float32 latents; the engines turn them
into images, so `generate --save-latents` followed by `--latents` redraws the same images.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from . import draw
from .config import check_seed
from .errors import UsageError

MAX_SEEDS = 100_000  # one PNG per seed; a typo like 0-10000000000 should not fill the disk


def read_latents(path: Path, latent_dim: int, flag: str = "--latents") -> np.ndarray:
    """A (N, latent_dim) float array from an .npy file, as float32. Anything else (missing file,
    .npz, pickled objects, wrong shape or dtype, NaN or inf) is a one-line UsageError."""
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{flag} {path} does not exist") from None
    except (ValueError, OSError, EOFError) as e:
        raise UsageError(f"{flag} {path} is not a readable .npy array ({e})") from None
    if not isinstance(z, np.ndarray):  # an .npz archive
        z.close()
        raise UsageError(f"{flag} {path} is an .npz archive; save one array with numpy.save")
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] != latent_dim:
        raise UsageError(
            f"{flag} {path} has shape {z.shape}; this generator wants (N, {latent_dim}) with N >= 1"
        )
    if z.dtype.kind != "f":
        raise UsageError(f"{flag} {path} has dtype {z.dtype}; latents are floats (float32)")
    bad = ~np.isfinite(z)
    if bad.any():
        row = int(np.nonzero(bad.any(axis=1))[0][0])
        raise UsageError(f"{flag} {path} has {int(bad.sum())} NaN or infinite values (row {row})")
    return np.ascontiguousarray(z, dtype=np.float32)


def latents_bytes(z: np.ndarray) -> bytes:
    """An .npy file's bytes for float32 latents (N, latent_dim), for an atomic write."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(z, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def labels_path(latents: Path) -> Path:
    """Where a conditional run's classes travel beside a latent file: Z.npy -> Z.labels.npy."""
    latents = Path(latents)
    return latents.with_name(latents.name.removesuffix(".npy") + ".labels.npy")


def labels_bytes(labels: np.ndarray) -> bytes:
    """An .npy file's bytes for class labels int64 (N,)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(labels, dtype=np.int64), allow_pickle=False)
    return buf.getvalue()


def read_labels(latents: Path, num_classes: int, n: int) -> np.ndarray | None:
    """The classes saved beside a latent file (`labels_path`), or None when there is no such
    file; a file that is not n whole class numbers in [0, num_classes) is a one-line UsageError."""
    path = labels_path(latents)
    if not path.is_file():
        return None
    try:
        y = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UsageError(f"{path} is not a readable .npy array ({e})") from None
    if not isinstance(y, np.ndarray) or y.shape != (n,) or y.dtype.kind not in "iu":
        raise UsageError(f"{path} must hold {n} class numbers (the rows of {Path(latents).name})")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise UsageError(
            f"{path} has labels outside 0..{num_classes - 1} (row {int(np.argmax(bad))}: "
            f"{int(y[np.argmax(bad)])})"
        )
    return y.astype(np.int64)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between latents a and b (D,) at fractions t (T,) -> (T, D) float32.
    Computed in float64 so both engines get the same walk."""
    a64, b64, t64 = (np.asarray(x, np.float64) for x in (a, b, t))
    cos = a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1, 1))
    if abs(omega) < 1e-6:
        out = a64 + t64[:, None] * (b64 - a64)
    else:
        so = np.sin(omega)
        out = (np.sin((1 - t64) * omega)[:, None] * a64 + np.sin(t64 * omega)[:, None] * b64) / so
    out = out.astype(np.float32)
    out[t64 == 0], out[t64 == 1] = a, b  # the ends exactly, whatever the rounding
    return out


def interpolation(ends: np.ndarray, steps: int) -> np.ndarray:
    """Walks (slerp) between the pairs of rows of `ends` (2R, D): R walks of `steps` latents each,
    row-major -> (R * steps, D)."""
    if len(ends) % 2:
        raise UsageError(
            f"--interpolate walks between pairs of latents; the latent file has {len(ends)} rows "
            "(give an even number: rows 0-1 are the first walk, 2-3 the second, ...)"
        )
    t = np.linspace(0, 1, steps)
    return np.concatenate([slerp(ends[r], ends[r + 1], t) for r in range(0, len(ends), 2)])


Group = list[int] | Path


def parse_arithmetic(text: str) -> tuple[Group, Group, Group]:
    """Parse "3,7,12 - 5,9 + 1,4" into ([3, 7, 12], [5, 9], [1, 4]): the sample indices of the
    groups a, b and c of a - b + c. A group may instead be an .npy latent file whose rows are
    averaged ("smile.npy - neutral.npy + 4,5"); with files, put spaces around - and +."""
    items = r"[\d,\s]+?"
    m = re.fullmatch(rf"\s*({items})\s*-\s*({items})\s*\+\s*({items})\s*", text)
    if m is None:  # file groups: spaces around the operators, since paths may hold - and +
        m = re.fullmatch(r"\s*(\S.*?)\s+-\s+(\S.*?)\s+\+\s+(\S.*?)\s*", text)
    groups: list[Group] = []
    for part in m.groups() if m else ():
        if part.endswith(".npy"):
            groups.append(Path(part))
            continue
        if not re.fullmatch(r"[\d,\s]+", part):
            break
        indices = [int(x) for x in re.split(r"[,\s]+", part.strip()) if x]
        if not indices:
            break
        groups.append(indices)
    if len(groups) != 3:
        raise UsageError(
            f'--arithmetic wants "A - B + C", each a comma-separated list of sample indices '
            f'or an .npy latent file (e.g. "3,7,12 - 5,9 + 1,4"), got "{text}"'
        )
    return groups[0], groups[1], groups[2]


def arithmetic(
    z: np.ndarray,
    groups: tuple[Group, Group, Group],
    seed: int,
    variants: int = 8,
    noise: float = 0.25,
    source: str = "samples",
) -> np.ndarray:
    """The paper's vector arithmetic (section 6.3.2): each group's latents (rows of `z` by index,
    or all rows of its .npy file) are averaged, and z_a - z_b + z_c is drawn plain and with
    `variants` uniform perturbations of +-`noise` (from the seed's own stream), as in the paper's
    figure 7. Returns float32 (4 + variants, D): mean a, mean b, mean c, the result, variants."""
    means = []
    for group in groups:
        if isinstance(group, Path):
            means.append(read_latents(group, z.shape[1], "--arithmetic").mean(0))
            continue
        for index in group:
            if not 0 <= index < len(z):
                raise UsageError(
                    f"--arithmetic index {index} is not among the {len(z)} {source} "
                    f"(0..{len(z) - 1})"
                )
        means.append(z[group].mean(0))
    a, b, c = means
    result = a - b + c
    rng = np.random.default_rng([check_seed(seed), draw.USER, _ARITHMETIC])
    jitter = ((rng.random((variants, z.shape[1])) * 2 - 1) * noise).astype(np.float32)
    return np.concatenate([np.stack([a, b, c, result]), result + jitter]).astype(np.float32)


_ARITHMETIC = 0x6172_6974  # "arit": the jitter stream of --arithmetic


def parse_seeds(text: str) -> list[int]:
    """ "0-35,100" -> [0, 1, ..., 35, 100]: comma-separated seeds and inclusive ranges, in the order
    given, duplicates dropped. Each seed is checked by `check_seed`."""
    seeds: dict[int, None] = {}
    total = 0
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise UsageError(
                f'--seeds wants comma-separated seeds and ranges like "0-35,100", got "{text}"'
            )
        lo = check_seed(int(m.group(1)), "--seeds")
        hi = check_seed(int(m.group(2)), "--seeds") if m.group(2) else lo
        if hi < lo:
            raise UsageError(f"--seeds range {lo}-{hi} runs backwards; write {hi}-{lo}")
        total += hi - lo + 1
        if total > MAX_SEEDS:
            raise UsageError(f"--seeds {text} names more than {MAX_SEEDS} images; split the call")
        seeds.update(dict.fromkeys(range(lo, hi + 1)))
    return list(seeds)


def seed_latents(seeds: list[int], latent_dim: int, psi: float | None) -> np.ndarray:
    """Row k is the first latent of seed seeds[k] (truncated when psi is set): one image per
    seed, the same whichever other seeds are asked for."""
    if not seeds:
        return np.zeros((0, latent_dim), np.float32)
    return np.concatenate([draw.truncated_latents(1, latent_dim, s, psi) for s in seeds])
