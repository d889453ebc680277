"""Image-quality metrics behind `dcgan eval`, `dcgan compare` and `--eval-every`: a registry of
metric names and an `Evaluator` that prepares the real side once and scores generated batches.

Every input is uint8 images (N, C, H, W), C in {1, 3}, as `ImageSet.images` holds them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import ImageSet
from ..errors import UsageError
from . import digits as _digits
from . import swd as _swd
from .frechet import FeatureStats, frechet_distance, kernel_distance
from .reference import Reference, reference_stats, subset

__all__ = [
    "METRICS",
    "Evaluator",
    "FeatureStats",
    "MetricInfo",
    "cheap_metric_names",
    "check_sample_count",
    "compute_metrics",
    "frechet_distance",
    "is_better",
    "kernel_distance",
    "parse_metric_names",
]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    key: str  # the result key that ranks runs / picks the best checkpoint
    lower_is_better: bool
    cheap: bool  # fine for --eval-every on CPU with a few thousand images
    needs_weights: bool  # the Inception weights file (download or local)
    summary: str
    # the fewest generated images that give a usable value: FID's 2048-d covariance needs 2048,
    # the digits FD's 64-d one a few more than 64; below that `dcgan eval` refuses
    min_samples: int = 32


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("swd", "swd", True, True, False, "sliced Wasserstein distance x1e3 (ProGAN)"),
        MetricInfo(
            "digits",
            "digits_fd",
            True,
            True,
            False,
            "digit-classifier Frechet distance, coverage, confident share, class KL",
            min_samples=100,
        ),
        MetricInfo(
            "fid", "fid", True, False, True, "Frechet Inception distance (>= 2048 images)", 2048
        ),
        MetricInfo(
            "kid", "kid", True, False, True, "kernel Inception distance (unbiased MMD^2)", 100
        ),
        MetricInfo("is", "is", False, False, True, "Inception score", 100),
    )
}
_INCEPTION = ("fid", "kid", "is")


def cheap_metric_names(dataset_is_digits: bool) -> tuple[str, ...]:
    """What `--eval-every` computes: the digits metric (first, so it picks the best checkpoint)
    and SWD on digit data, SWD alone otherwise."""
    return ("digits", "swd") if dataset_is_digits else ("swd",)


def parse_metric_names(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """ "fid,kid" -> ("fid", "kid"); unknown names are a UsageError naming the choices."""
    names = tuple(n.strip() for n in text.split(",")) if isinstance(text, str) else tuple(text)
    names = tuple(dict.fromkeys(n for n in names if n))
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise UsageError(f"unknown metric {', '.join(bad) or '(none)'}; use {', '.join(METRICS)}")
    return names


def check_sample_count(names: tuple[str, ...], n: int, flag: str = "--num") -> None:
    """Refuse (UsageError) scoring fewer generated images than a metric needs."""
    for name in names:
        need = METRICS[name].min_samples
        if n < need:
            raise UsageError(f"{flag} {n} is too few images for {name}: it needs at least {need}")


def is_better(name: str, new: float, old: float | None) -> bool:
    """Whether `new` beats `old` for metric `name`'s key (None: nothing yet, so True)."""
    if old is None:
        return True
    return new < old if METRICS[name].lower_is_better else new > old


class Evaluator:
    """Scores generated images against one real set; build once, call every evaluation.

    real: ImageSet or uint8 (N, C, H, W). names: keys of METRICS. num_real: a seeded subset of the
    real images (None: all). The real side (reference features, Inception weights) is prepared
    here, so a missing weights file or a bad name fails before training starts. Reference
    statistics are cached on disk (see reference.py) unless use_cache is False.
    inception_weights: path, None (look up / download) or "random" (tests and timing only; the
    results are then named "<key>_randominit" so they are never mistaken for real FID).
    """

    def __init__(
        self,
        real: ImageSet | np.ndarray,
        names: tuple[str, ...] | str = ("swd",),
        *,
        split: str = "all",
        num_real: int | None = None,
        seed: int = 0,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        inception_weights: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 50,
        progress: Callable | None = None,
    ):
        self.names = parse_metric_names(names)
        images = real.images if isinstance(real, ImageSet) else np.asarray(real)
        _check_images(images, "real")
        self.dataset = real.name if isinstance(real, ImageSet) else "images"
        self.real = subset(images, num_real, seed)
        self.seed, self.device, self.batch_size, self.progress = seed, device, batch_size, progress
        common = dict(dataset=self.dataset, split=split, cache_dir=cache_dir, use_cache=use_cache)
        common["extra_key"] = {"subset_seed": seed, "num_real": num_real}
        self.digits_ref: Reference | None = None
        if "digits" in self.names:
            weights_id = hashlib.sha256(_digits.weights_bytes()).hexdigest()[:8]
            self.digits_ref = reference_stats(
                self.real, f"digits-{weights_id}", lambda x: _digits.classify(x)[0], **common
            )
        self.inception, self.inception_ref, self.suffix = None, None, ""
        if any(n in _INCEPTION for n in self.names):
            from . import inception as _inc

            self.inception = _inc.load_inception(inception_weights)
            random = self.inception.random_weights
            self.suffix = "_randominit" if random else ""
            if {"fid", "kid"} & set(self.names):
                if "fid" in self.names:
                    _inc.check_fid_count(len(self.real), "reference")
                extractor = "inception-random" if random else "inception-6726825d"
                self.inception_ref = reference_stats(
                    self.real, extractor, self._inception_pool, keep_features=True, **common
                )

    def _inception_pool(self, images: np.ndarray) -> np.ndarray:
        return self._inception(images)[0]

    def _inception(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from .inception import inception_features

        return inception_features(
            images, self.inception, self.batch_size, self.device, self.progress
        )

    def __call__(self, fake: np.ndarray) -> dict[str, float]:
        """Metrics of generated uint8 images (N, C, H, W) -> {result key: value}.

        Keys: swd, swd_<side>; digits_fd, digits_coverage, digits_confident, digits_kl; fid;
        kid, kid_std; is, is_std (each with "_randominit" appended for random Inception weights).
        """
        _check_images(fake, "generated")
        out: dict[str, float] = {}
        if "digits" in self.names:
            out.update(_digits.digits_metrics(fake, self.digits_ref.stats))
        if "swd" in self.names:
            if fake.shape[1:] != self.real.shape[1:]:
                raise UsageError(
                    f"SWD compares images of one shape: generated {fake.shape[1:]}, "
                    f"real {self.real.shape[1:]}"
                )
            # SWD compares equal descriptor counts: a seeded real subset of the generated count
            # gives the same estimate as subsampling all real descriptors, at a fraction of the cost
            out.update(_swd.swd(fake, subset(self.real, len(fake), self.seed), self.seed))
        if self.inception is not None:
            out.update(self._inception_metrics(fake))
        return out

    def _inception_metrics(self, fake: np.ndarray) -> dict[str, float]:
        from . import inception as _inc

        if "fid" in self.names:
            _inc.check_fid_count(len(fake), "generated")  # before minutes of feature extraction
        pool, logits = self._inception(fake)
        out: dict[str, float] = {}
        if "fid" in self.names:
            out["fid"] = _inc.fid_from_features(pool, self.inception_ref.stats)
        if "kid" in self.names:
            out["kid"], out["kid_std"] = kernel_distance(
                pool, self.inception_ref.features, seed=self.seed
            )
        if "is" in self.names:
            out["is"], out["is_std"] = _inc.inception_score(logits)
        return {k + self.suffix: v for k, v in out.items()}


def _check_images(images: np.ndarray, what: str) -> None:
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1] not in (1, 3):
        raise UsageError(
            f"{what} images must be uint8 (N, 1|3, H, W), got {images.dtype} {images.shape}"
        )


def compute_metrics(
    fake: np.ndarray,
    real: ImageSet | np.ndarray,
    names: tuple[str, ...] | str = ("swd", "digits"),
    **kwargs,
) -> dict[str, float]:
    """One-shot: `Evaluator(real, names, **kwargs)(fake)`."""
    return Evaluator(real, names, **kwargs)(fake)
