"""The shipped digit classifier and the metrics built on it: Frechet distance in its feature
space, class coverage, the confident fraction, and the KL divergence of the class histogram
from uniform (which catches mode collapse). Weights: assets/digit_classifier.safetensors.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load

from .. import pixels
from .frechet import FeatureStats, frechet_from_stats

FEATURE_DIM = 64
NUM_CLASSES = 10
MIN_SHARE = 0.01  # a class counts as covered when >= 1% of samples (a tenth of uniform) hit it
CONFIDENT = 0.9
WEIGHTS_NAME = "digit_classifier.safetensors"


class DigitClassifier(torch.nn.Module):
    """float (N, 1, 28, 28) in [-1, 1] -> (features (N, 64), logits (N, 10)).

    Two 3x3 conv + max-pool stages (16, 32 channels) and a 64-wide hidden layer, whose ReLU
    output is the feature space for the Frechet distance. About 105k parameters (420 kB).
    """

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.hidden = torch.nn.Linear(32 * 7 * 7, FEATURE_DIM)
        self.out = torch.nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 16 x 14 x 14
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 32 x 7 x 7
        features = F.relu(self.hidden(x.flatten(1)))
        return features, self.out(features)


def weights_bytes() -> bytes:
    return (resources.files("dcgan") / "assets" / WEIGHTS_NAME).read_bytes()


@lru_cache(maxsize=1)
def load_classifier() -> DigitClassifier:
    """The shipped classifier, eval mode, on CPU (cached: callers must not modify it)."""
    model = DigitClassifier()
    model.load_state_dict(load(weights_bytes()))
    return model.eval()


def to_classifier_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W), C in {1, 3} -> float32 (N, 1, 28, 28) in [-1, 1].

    RGB is averaged to gray. 32 px is the bundled digits' 28 px padded by 2, so it is center-
    cropped; other sizes are resized with antialiased bilinear interpolation.
    """
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"digits metric wants uint8 (N, 1|3, H, W), got {images.dtype} {images.shape}"
        )
    x = torch.from_numpy(np.ascontiguousarray(images)).float().mean(dim=1, keepdim=True)
    side = x.shape[-1]
    if side == 32:
        x = x[..., 2:30, 2:30]
    elif side != 28:
        x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return pixels.uint8_to_model(x)


@torch.no_grad()
def classify(
    images: np.ndarray, batch_size: int = 1000, model: DigitClassifier | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) -> (features float32 (N, 64), probabilities float32 (N, 10))."""
    model = model or load_classifier()
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        f, logits = model(to_classifier_input(images[i : i + batch_size]))
        feats.append(f.numpy())
        probs.append(torch.softmax(logits, dim=1).numpy())
    return np.concatenate(feats), np.concatenate(probs)


def class_metrics(probs: np.ndarray) -> dict[str, float]:
    """From probabilities (N, 10): coverage (classes with >= MIN_SHARE of argmax predictions,
    0..10), confident (fraction with max prob >= 0.9, 0..1) and kl (KL(histogram || uniform) in
    nats, 0 = perfectly balanced, log 10 = 2.30 = a single class)."""
    hist = np.bincount(probs.argmax(axis=1), minlength=NUM_CLASSES) / len(probs)
    nonzero = hist[hist > 0]
    return {
        "digits_coverage": float((hist >= MIN_SHARE).sum()),
        "digits_confident": float((probs.max(axis=1) >= CONFIDENT).mean()),
        "digits_kl": float((nonzero * np.log(nonzero * NUM_CLASSES)).sum()),
    }


def digits_metrics(fake: np.ndarray, real_stats: FeatureStats) -> dict[str, float]:
    """All digits metrics of uint8 images (N, C, H, W) against the real set's feature statistics.

    digits_fd is lower-better; coverage/confident higher-better; kl lower-better.
    """
    features, probs = classify(fake)
    out = {"digits_fd": frechet_from_stats(FeatureStats.of(features), real_stats)}
    out.update(class_metrics(probs))
    return out


def class_agreement(images: np.ndarray, labels: np.ndarray) -> float:
    """The share of a conditional run's digit samples uint8 (N, 1, 28, 28) that the shipped
    classifier labels as the class they were asked for (labels int (N,), the digit itself)."""
    _, probs = classify(images)
    return float((probs.argmax(1) == np.asarray(labels)).mean())
