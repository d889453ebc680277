"""The uint8 <-> model-range mapping for torch tensors: the twin of images.uint8_to_model and
images.model_to_uint8 (same constants, the same float32 values bit for bit).

images.py stays torch-free for the NumPy engine; torch code converts here.
"""

from __future__ import annotations

import torch

from .images import MODEL_TO_UINT8, UINT8_TO_MODEL


def uint8_to_model(x: torch.Tensor) -> torch.Tensor:
    """uint8 (or floats on the 0..255 scale) -> a new float32 tensor in [-1, 1], same device."""
    y = x.float() if x.dtype != torch.float32 else x.clone()  # never scale the caller's tensor
    return y.mul_(UINT8_TO_MODEL).sub_(1.0)


def model_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] (outside clipped) -> uint8 0..255, rounded to nearest (ties to even)."""
    return x.float().add(1.0).mul_(MODEL_TO_UINT8).round_().clamp_(0, 255).to(torch.uint8)
