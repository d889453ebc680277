"""`dcgan generate`: PNG files (and optionally a grid) from a run: plain samples, discriminator-
ranked ("nice") samples, latent interpolations, or vector arithmetic on chosen samples."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from ..config import DEVICES, ENGINES
from ..errors import UsageError
from . import positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="write images from a trained run",
        description="Generate PNG images from a run directory (or a checkpoint file). Uses the EMA "
        "generator when the run has one. The same seed gives the same images.",
    )
    p.add_argument("run", type=Path, help="run directory (or checkpoint file)")
    p.add_argument("--num", type=positive_int, default=64, help="how many images (default 64)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument(
        "--out", type=Path, help="output folder (default RUN/generated/<step>-<mode>-seed<S>)"
    )
    p.add_argument("--grid", action="store_true", help="also write grid.png with all images")
    p.add_argument(
        "--nice", type=float, metavar="P", help="draw N/P candidates, keep the N that D rates best"
    )
    p.add_argument(
        "--interpolate",
        type=positive_int,
        metavar="STEPS",
        help="--num rows of STEPS images each, walking (slerp) between two random latents; "
        "writes the frames and grid.png with one row per walk",
    )
    p.add_argument(
        "--arithmetic",
        metavar='"A - B + C"',
        help="vector arithmetic on the samples of --seed, by index (below --num): e.g. "
        '"3,7,12 - 5,9 + 1,4" averages the latents of each group and draws mean(A) - mean(B) '
        "+ mean(C) and 8 jittered copies; grid.png shows A, B, C, the result, the copies",
    )
    p.add_argument(
        "--checkpoint", default="latest", choices=("latest", "best"), help="which checkpoint"
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="torch",
        help="torch (default) or numpy (no torch import; CuPy with --device cuda). Either engine "
        "reads either engine's runs, and the same seed gives the same images",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..images import make_grid, save_png

    if args.engine == "numpy":
        from ..numpy_engine.sampling import load_sampler, nice, sample
        from ..numpy_engine.train import resolve_device
    else:
        from ..sampling import load_sampler, nice, sample
        from ..torch_engine import resolve_device

    modes = [m for m in ("interpolate", "nice", "arithmetic") if getattr(args, m) is not None]
    if len(modes) > 1:
        raise UsageError(f"--{modes[0]} and --{modes[1]} cannot be combined")
    if args.engine == "numpy" and modes and modes[0] != "nice":
        raise UsageError(f"--{modes[0]} needs the torch engine (drop --engine numpy)")
    device = resolve_device(args.device)
    sampler = load_sampler(args.run, device, args.checkpoint)
    scores, nrow = None, None
    if args.interpolate is not None:
        from ..sampling import interpolate

        images = interpolate(sampler, rows=args.num, steps=args.interpolate, seed=args.seed)
        mode, nrow, args.grid = f"interpolate{args.interpolate}", args.interpolate, True
    elif args.arithmetic is not None:
        from ..sampling import arithmetic, parse_arithmetic

        groups = parse_arithmetic(args.arithmetic)
        images = arithmetic(sampler, groups, args.num, args.seed)
        mode, args.grid = "arithmetic", True
    elif args.nice is not None:
        images, scores = nice(sampler, args.num, args.nice, args.seed)
        mode = f"nice{args.nice:g}"
    else:
        images = sample(sampler, args.num, args.seed)
        mode = "sample"
    run_dir = args.run if args.run.is_dir() else args.run.parent.parent
    out = args.out or run_dir / "generated" / f"step{sampler.step}-{mode}-seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    names = [f"{i:05d}.png" for i in range(len(images))]
    for name, image in zip(names, images):
        save_png(out / name, image.transpose(1, 2, 0))
    if scores is not None:
        with open(out / "scores.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "rank", "d_logit"])
            writer.writerows(
                (name, i + 1, f"{s:.6f}") for i, (name, s) in enumerate(zip(names, scores))
            )
    if args.grid:
        save_png(out / "grid.png", make_grid(np.ascontiguousarray(images), nrow=nrow))
    extra = " and scores.csv" if scores is not None else ""
    print(
        f"wrote {len(images)} images{extra} to {out} (checkpoint step {sampler.step})",
        file=sys.stderr,
    )
    return 0
