"""The FID Inception-v3 (the TF 2015-12-05 graph ported by pytorch-fid / torch-fidelity) in plain
torch.nn, its weights file (lookup, sha256 check, download), feature extraction, FID and IS.

Protocol: uint8 inputs, TF1-compatible bilinear resize to 299, (x - 128) / 128, 2048-d pool
features for FID/KID, bias-free logits for IS, statistics in float64.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..datasets import default_cache_dir
from ..errors import DcganError
from .frechet import FeatureStats, frechet_from_stats
from .inception_net import InceptionV3FID

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
# torch-fidelity publishes the same bytes (same sha256) under this name; reuse its download
ALT_WEIGHTS_NAMES = ("weights-inception-2015-12-05-6726825d.pth",)
MIN_FID_SAMPLES = 2048
RANDOM = "random"  # weights value for a randomly initialised net: tests and timing only


def torch_home() -> Path:
    """$TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch (torch.hub's rule)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "torch"


def weights_candidates() -> list[Path]:
    """Where the weights are looked for after an explicit path, in order: the dcgan home
    ($DCGAN_HOME, default ~/.cache/dcgan), then the torch hub cache (shared with pytorch-fid)."""
    hub = torch_home() / "hub" / "checkpoints"
    return [default_cache_dir() / WEIGHTS_NAME, hub / WEIGHTS_NAME] + [
        hub / n for n in ALT_WEIGHTS_NAMES
    ]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, sha256: str) -> Path:
    found = sha256_file(path)
    if found != sha256:
        raise DcganError(
            f"Inception weights {path} have sha256 {found[:16]}..., expected {sha256}: the file is "
            "truncated or a different model; delete it so it is downloaded again, or replace it"
        )
    return path


def find_weights(
    path: str | Path | None = None,
    *,
    url: str = FID_WEIGHTS_URL,
    sha256: str = FID_WEIGHTS_SHA256,
    download: bool | None = None,
    timeout: float = 60.0,
) -> Path:
    """Path of verified FID Inception weights: `path` if given (must exist), else the first of
    `weights_candidates()` that exists, else a download into the torch hub cache.

    `download` None means yes unless $DCGAN_OFFLINE is set (to anything but "" or "0"), which
    offline clusters and tests use to get the error at once instead of a network timeout.
    Every file found is checked against `sha256`. A download goes to a temporary file in the
    destination folder and is renamed only once its hash matches, so no half file is ever left.
    Raises DcganError (one line: URL, expected hash and where to put the file) when it fails.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise DcganError(f"Inception weights file {path} does not exist")
        return _verify(path, sha256)
    for candidate in weights_candidates():
        if candidate.is_file():
            return _verify(candidate, sha256)
    dest = weights_candidates()[1]
    offline = download is None and os.environ.get("DCGAN_OFFLINE", "") not in ("", "0")
    if download is False or offline:
        why = "DCGAN_OFFLINE is set" if offline else "downloads are disabled"
        raise DcganError(_missing_message(url, sha256, dest, why))
    try:
        return _download(url, dest, sha256, timeout)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DcganError(
            _missing_message(url, sha256, dest, f"download failed: {reason}")
        ) from None


def _missing_message(url: str, sha256: str, dest: Path, why: str) -> str:
    return (
        f"Inception weights not found ({why}); download {url} (sha256 {sha256}) and save it as "
        f"{dest}, or pass its path with --inception-weights"
    )


def _download(url: str, dest: Path, sha256: str, timeout: float) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
            for block in iter(lambda: r.read(1 << 20), b""):
                h.update(block)
                f.write(block)
        if h.hexdigest() != sha256:
            raise ValueError(
                f"the downloaded file has sha256 {h.hexdigest()[:16]}..., not the expected one"
            )
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def load_inception(weights: str | Path | None = None, **find_kwargs) -> InceptionV3FID:
    """The FID Inception in eval mode on CPU. `weights`: a path, None (look up / download, see
    `find_weights`) or "random" (seeded random init: NOT comparable to any published FID)."""
    model = InceptionV3FID()
    if weights == RANDOM:
        with torch.random.fork_rng():  # leave the caller's global RNG untouched
            torch.manual_seed(0)
            model.reset_parameters()
        model.random_weights = True
        return model.eval()
    path = find_weights(weights, **find_kwargs)
    # weights_only: the .pth is a pickle; this loader refuses anything but tensors and containers
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing + unexpected if not k.endswith("num_batches_tracked")]
    if bad:
        raise DcganError(f"Inception weights {path} do not match the FID network: {bad[:3]}...")
    return model.eval()


@torch.no_grad()
def inception_features(
    images: np.ndarray,
    model: nn.Module,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    progress: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W), C in {1, 3} (gray is repeated to RGB) -> (pool features
    float32 (N, 2048), bias-free logits float32 (N, 1008)). `progress` wraps the batch iterator."""
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1] not in (1, 3):
        raise ValueError(f"Inception wants uint8 (N, 1|3, H, W), got {images.dtype} {images.shape}")
    model = model.to(device)
    pools, logits = [], []
    starts = range(0, len(images), batch_size)
    for i in progress(starts) if progress else starts:
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        pool, logit = model(x)
        pools.append(pool.float().cpu().numpy())
        logits.append(logit.float().cpu().numpy())
    return np.concatenate(pools), np.concatenate(logits)


def check_fid_count(n: int, what: str = "generated") -> None:
    """FID on fewer than 2048 samples has a singular 2048x2048 covariance and a large bias."""
    if n < MIN_FID_SAMPLES:
        raise DcganError(
            f"FID needs at least {MIN_FID_SAMPLES} {what} images (got {n}): with fewer the "
            "2048-d covariance is singular and the value is not comparable; use --num 10000"
        )


def fid_from_features(fake: np.ndarray, real_stats: FeatureStats) -> float:
    """FID of fake pool features (N, 2048) against real statistics; both need >= 2048 samples."""
    check_fid_count(len(fake), "generated")
    check_fid_count(real_stats.count, "reference")
    return frechet_from_stats(FeatureStats.of(fake), real_stats)


def inception_score(logits: np.ndarray, splits: int = 10, seed: int = 2020) -> tuple[float, float]:
    """IS (mean, std over `splits` shuffled splits) from bias-free logits (N, 1008), in float64,
    as torch-fidelity computes it: exp(E_x KL(p(y|x) || p(y)))."""
    x = torch.from_numpy(np.asarray(logits, np.float64))
    x = x[np.random.RandomState(seed).permutation(len(x))]
    log_p = torch.log_softmax(x, dim=1)
    p = log_p.exp()
    n, scores = len(x), []
    splits = max(1, min(splits, n))  # a tiny test set cannot fill 10 splits
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        part, log_part = p[lo:hi], log_p[lo:hi]
        q = part.mean(dim=0, keepdim=True)
        scores.append((part * (log_part - q.log())).sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))
