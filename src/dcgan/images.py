"""Pixel ranges, image grids and PNG/GIF writing (NumPy + Pillow only, no torch).

Two named ranges exist and every conversion says which it goes between:
- "uint8": integers 0..255, what files and the data cache hold;
- "model": floats in [-1, 1], what the generator's Tanh produces and D consumes.
Arrays are channel-first (N, C, H, W) unless a function says otherwise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

# The one affine map between the ranges, model = uint8 * UINT8_TO_MODEL - 1, and its inverse
# uint8 = round((model + 1) * MODEL_TO_UINT8) clipped to 0..255. dcgan.pixels is the torch twin.
UINT8_TO_MODEL = 2.0 / 255.0
MODEL_TO_UINT8 = 127.5


def uint8_to_model(x: np.ndarray) -> np.ndarray:
    """uint8 0..255 (or floats on that scale) -> float32 in [-1, 1]. Uses the array's own
    methods, so a CuPy array stays on its device."""
    if not hasattr(x, "astype"):
        x = np.asarray(x)
    return x.astype(np.float32) * np.float32(UINT8_TO_MODEL) - np.float32(1.0)


def model_to_uint8(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1] (values outside are clipped) -> uint8 0..255, rounded to nearest (ties to
    even). Uses the array's own methods, so a CuPy array stays on its device."""
    if not hasattr(x, "astype"):
        x = np.asarray(x)
    x = (x.astype(np.float32) + np.float32(1.0)) * np.float32(MODEL_TO_UINT8)
    return x.round().clip(0, 255).astype(np.uint8)


def make_grid(
    images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 0
) -> np.ndarray:
    """Tile uint8 images (N, C, H, W) into one (H', W', C) uint8 image, `nrow` images per row.

    nrow defaults to ceil(sqrt(N)), giving a square-ish grid.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"make_grid wants uint8 (N, C, H, W), got {images.dtype} {images.shape}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    grid = np.full(
        (c, padding + ncol * (h + padding), padding + nrow * (w + padding)), pad_value, np.uint8
    )
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid.transpose(1, 2, 0)


def to_pil(image: np.ndarray) -> Image.Image:
    """One uint8 image, (H, W, C) with C in {1, 3} or (H, W), to a Pillow image."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(image))


def save_png(path: Path, image: np.ndarray) -> None:
    """Save one uint8 image (H, W, C) or (H, W) as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(image).save(path, format="PNG")


def save_gif(
    path: Path, frames: list[np.ndarray], duration_ms: int = 200, final_hold_ms: int = 1500
) -> None:
    """Save uint8 frames (H, W, C) as a looping GIF; the last frame is held a little longer."""
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    images = [to_pil(f).convert("RGB") for f in frames]
    durations = [duration_ms] * (len(images) - 1) + [final_hold_ms]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0
    )


def upscale_nearest(image: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge an (H, W, C) image by an integer factor, so tiny grids stay crisp when viewed."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image
