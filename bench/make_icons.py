"""A folder of flat-coloured icons to train on: the kind of small, clean set users bring (app
icons, sprites, logos, badges), made with Pillow alone, with nothing downloaded.

    python bench/make_icons.py OUT [--num 3000] [--size 64] [--seed 0]

Writes OUT/icon_00000.png ...: RGBA PNGs with sides from --size to --size + 8 px, each one glyph
(a shape: circle, square, triangle, star, ring; a digit, a letter or a symbol) in a flat colour,
on a transparent or white background, about a third inside a rounded coloured square. Edges
are anti-aliased (drawn at 4x, then downsampled). Image i is a function of (seed, i) alone, so
--num 100 gives the first 100 images of --num 3000.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import string
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHAPES = ("circle", "square", "triangle", "star", "ring")
SYMBOLS = "@#&%$?!+=*"
SUPERSAMPLE = 4


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # a scalable font since Pillow 10.1


def _colour(rng: np.random.Generator, avoid_light: bool = True) -> tuple[int, int, int, int]:
    """A saturated flat colour (random hue)."""
    h = rng.random()
    s = rng.uniform(0.55, 1.0)
    v = rng.uniform(0.45, 0.95) if avoid_light else rng.uniform(0.7, 1.0)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255), 255


def _star(cx: float, cy: float, r: float, points: int = 5) -> list[tuple[float, float]]:
    out = []
    for k in range(2 * points):
        radius = r if k % 2 == 0 else r * 0.45
        a = -math.pi / 2 + k * math.pi / points
        out.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return out


def _draw_glyph(draw: ImageDraw.ImageDraw, kind: str, text: str, box, colour, rng) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif kind == "star":
        draw.polygon(_star(cx, cy, r), fill=colour)
    elif kind == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(r * rng.uniform(0.25, 0.45))))
    else:  # text: a digit, letter or symbol
        size = int((y1 - y0) * 1.15)
        stroke = int(size * rng.uniform(0.0, 0.05))
        draw.text(
            (cx, cy),
            text,
            fill=colour,
            font=_font(size),
            anchor="mm",
            stroke_width=stroke,
            stroke_fill=colour,
        )


def make_icon(seed: int, index: int, size: int = 64) -> Image.Image:
    """Icon `index` of the set of `seed`: an RGBA image, sides size..size + 8."""
    rng = np.random.default_rng([seed, index])
    side = int(rng.integers(size, size + 9))
    big = side * SUPERSAMPLE
    background = rng.choice(["transparent", "white"])
    img = Image.new("RGBA", (big, big), (255, 255, 255, 0 if background == "transparent" else 255))
    draw = ImageDraw.Draw(img)
    tile = rng.random() < 0.35
    glyph_colour = _colour(rng)
    if tile:  # a rounded coloured square, the glyph in white or a light colour on it
        margin = big * rng.uniform(0.02, 0.1)
        radius = big * rng.uniform(0.12, 0.28)
        draw.rounded_rectangle(
            [margin, margin, big - margin, big - margin], radius, fill=_colour(rng)
        )
        glyph_colour = (255, 255, 255, 255) if rng.random() < 0.6 else _colour(rng, False)
        extent = rng.uniform(0.38, 0.58)
    else:
        extent = rng.uniform(0.5, 0.8)
    u = rng.random()
    if u < 0.45:
        kind, text = str(rng.choice(SHAPES)), ""
    elif u < 0.65:
        kind, text = "text", str(rng.integers(0, 10))
    elif u < 0.9:
        kind, text = "text", str(rng.choice(list(string.ascii_letters)))
    else:
        kind, text = "text", str(rng.choice(list(SYMBOLS)))
    half = big * extent / 2
    jitter = big * (1 - extent) / 2 * (0.15 if tile else 0.4)
    cx = big / 2 + rng.uniform(-jitter, jitter)
    cy = big / 2 + rng.uniform(-jitter, jitter)
    _draw_glyph(draw, kind, text, (cx - half, cy - half, cx + half, cy + half), glyph_colour, rng)
    return img.resize((side, side), Image.Resampling.LANCZOS)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--num", type=int, default=3000)
    p.add_argument("--size", type=int, default=64, help="smallest side (largest: size + 8)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.num):
        make_icon(args.seed, i, args.size).save(args.out / f"icon_{i:05d}.png")
    print(f"wrote {args.num} icons to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
