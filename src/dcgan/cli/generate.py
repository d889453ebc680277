"""`dcgan generate`: PNG files (and optionally a grid) from a run or a generator folder: plain
samples, one image per seed, discriminator-ranked ("nice") samples, latent interpolations or
vector arithmetic, from seeds or from a latent file, optionally truncated."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEVICES, ENGINES
from ..errors import UsageError
from .options import positive_int

MARKER = "generate.json"  # says a folder is a generate output, so a rerun may replace it


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="write images from a trained run",
        description="Generate PNG images from a run directory, a checkpoint file or a generator "
        "folder (RUN/generator). Uses the EMA generator when the run has one. The same seed "
        "gives the same images. The output folder is replaced as a whole: it holds exactly what "
        "the last command wrote there (a folder that generate did not write is never touched).",
    )
    p.add_argument("run", type=Path, help="run directory, checkpoint file or generator folder")
    p.add_argument("--num", type=positive_int, help="how many images (default 64)")
    p.add_argument("--seed", type=int, help="latent seed (default 0)")
    p.add_argument(
        "--seeds",
        metavar="LIST",
        help='one image per seed, e.g. "0-35,100": writes seed0000.png ...; each image depends '
        "on its seed alone",
    )
    p.add_argument(
        "--latents",
        type=Path,
        metavar="Z.npy",
        help="draw from these latents: a float (N, latent_dim) .npy array (instead of --seed)",
    )
    p.add_argument(
        "--save-latents",
        type=Path,
        metavar="Z.npy",
        help="also write the latents of the written images (row i is image i) as float32 .npy",
    )
    p.add_argument(
        "--truncation",
        type=float,
        metavar="PSI",
        help="truncation trick: redraw every latent component with |z| > PSI (e.g. 0.7): "
        "more typical images, less variety",
    )
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
        help="--num rows of STEPS images each, walking (slerp) between two random latents (with "
        "--latents: between rows 0-1, 2-3, ...); writes the frames and grid.png, one row a walk",
    )
    p.add_argument(
        "--arithmetic",
        metavar='"A - B + C"',
        help="vector arithmetic on the samples of --seed, by index (below --num; with --latents, "
        'rows of the file), or on .npy latent files: e.g. "3,7,12 - 5,9 + 1,4" averages the '
        "latents of each group and draws mean(A) - mean(B) + mean(C) and 8 jittered copies; "
        "grid.png shows A, B, C, the result, the copies",
    )
    p.add_argument(
        "--class",
        dest="klass",
        metavar="NAME",
        help="a conditional run's class: a name or number (e.g. 7, cat); all: a class x seed "
        "grid; A:B with --interpolate: walk from class A to B with z fixed (default: the classes "
        "in turn, or the labels saved beside --latents)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --save-latents file")
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


def _check_options(args) -> str:
    """Validate option combinations before anything is loaded; returns the mode."""
    from .. import latent_space
    from ..config import check_seed
    from ..draw import check_truncation

    modes = [
        m for m in ("interpolate", "nice", "arithmetic", "seeds") if getattr(args, m) is not None
    ]
    if len(modes) > 1:
        raise UsageError(f"--{modes[0]} and --{modes[1]} cannot be combined")
    mode = modes[0] if modes else "sample"
    check_truncation(args.truncation)
    if args.seed is not None:
        check_seed(args.seed)
    if args.seeds is not None:
        for flag in ("num", "seed", "latents"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--seeds names the images; drop --{flag}")
    if args.latents is not None:
        taken = ["num", "truncation", "nice"] + ([] if mode == "arithmetic" else ["seed"])
        for flag in taken:
            if getattr(args, flag) is not None:
                raise UsageError(f"--latents gives the latents; drop --{flag}")
    if mode == "seeds":
        latent_space.parse_seeds(args.seeds)  # bad lists fail before anything is loaded
    if mode == "arithmetic":
        latent_space.parse_arithmetic(args.arithmetic)
    if args.save_latents is not None and args.save_latents.is_dir():
        raise UsageError(f"--save-latents {args.save_latents} is a folder; name the .npy file")
    if args.save_latents is not None and args.save_latents.exists() and not args.force:
        raise UsageError(f"--save-latents {args.save_latents} exists; pass --force to replace it")
    return mode


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UsageError(
            f"--out {out} holds files that dcgan generate did not write; choose another folder "
            "(generate replaces its output folder as a whole)"
        )


def run(args) -> int:
    from .. import artefact, latent_space, sampling
    from ..files import atomic_write

    mode = _check_options(args)
    if args.out is not None:
        _check_out(args.out)
    sampler = sampling.load_sampler(
        args.run, args.device, args.checkpoint, discriminator=mode == "nice", engine=args.engine
    )
    drawn = _draw(args, mode, sampling, sampler)

    label = _label(mode, args, args.seed or 0)
    out = (
        args.out or artefact.run_dir_of(sampler.path) / "generated" / f"step{sampler.step}-{label}"
    )
    _check_out(out)
    record = {
        "source": str(sampler.path),
        "step": sampler.step,
        "engine": args.engine,
        "mode": mode,
        "seed": None if mode == "seeds" or args.latents else args.seed or 0,
        "seeds": args.seeds,
        "latents": str(args.latents) if args.latents else None,
        "truncation": args.truncation,
        "images": len(drawn.images),
        "class": args.klass,
    }
    artefact.replace_dir(out, lambda tmp: _write(tmp, drawn, record))
    extra = " and scores.csv" if drawn.scores is not None else ""
    if args.save_latents is not None:
        atomic_write(args.save_latents, latent_space.latents_bytes(drawn.z))
        extra += f"; latents {tuple(drawn.z.shape)} to {args.save_latents}"
        if drawn.labels is not None and drawn.labels.ndim == 1:  # a conditional run's classes
            path = latent_space.labels_path(args.save_latents)
            atomic_write(path, latent_space.labels_bytes(drawn.labels))
            extra += f", their classes to {path.name}"
    trunc = f", truncation {args.truncation:g}" if args.truncation is not None else ""
    print(
        f"wrote {len(drawn.images)} images{extra} to {out} (checkpoint step {sampler.step}{trunc})",
        file=sys.stderr,
    )
    return 0


@dataclass
class _Drawn:
    images: Any  # uint8 (N, C, H, W)
    z: Any  # float32 (N, latent_dim): image i's latent
    names: list[str]
    scores: Any = None  # --nice: D's logits, best first
    grid: bool = False
    nrow: int | None = None
    labels: Any = None  # a conditional run's: image i's class (int64 (N,))


def _draw(args, mode: str, sampling, sampler) -> _Drawn:
    """The latents (and a conditional run's classes) of the images to write, from the seed, the
    seeds or --latents, through the mode; and the images."""
    from .. import draw, latent_space

    num, seed, psi = args.num, args.seed or 0, args.truncation
    dim = sampler.model.latent_dim
    z = latent_space.read_latents(args.latents, dim) if args.latents is not None else None
    classes = _Classes(args, sampler, mode, z)
    if mode == "seeds":
        seeds = latent_space.parse_seeds(args.seeds)
        z_out, y = latent_space.seed_latents(seeds, dim, psi), classes.each(len(seeds))
        names = [f"seed{s:04d}.png" for s in seeds]
        return _Drawn(sampling.per_seed(sampler, z_out, y), z_out, names, grid=args.grid, labels=y)
    num = num or (8 if classes.all else 64)
    if mode == "nice":
        candidates = draw.truncated_latents(draw.nice_candidates(num, args.nice), dim, seed, psi)
        y = classes.each(len(candidates))
        images, scores, z_out = sampling.nice_from_latents(sampler, candidates, num, y)
        return _Drawn(images, z_out, _numbered(num), scores, args.grid, labels=_first(y, num))
    grid, nrow = args.grid, None
    if mode == "interpolate":
        ends = z if z is not None else draw.truncated_latents(2 * num, dim, seed, psi)
        z_out, y = classes.walk(ends, args.interpolate)
        grid, nrow = True, args.interpolate
    elif mode == "arithmetic":
        groups = latent_space.parse_arithmetic(args.arithmetic)
        if z is None:
            z, source = draw.truncated_latents(num, dim, seed, psi), f"samples of --num {num}"
            source += f" --seed {seed}"
        else:
            source = f"rows of {args.latents}"
        z_out = latent_space.arithmetic(z, groups, seed, source=source)
        y, grid = classes.each(len(z_out)), True
    else:
        z_out = z if z is not None else draw.truncated_latents(num, dim, seed, psi)
        z_out, y, nrow = classes.grid(z_out, nrow)
    images = sampling.from_latents(sampler, z_out, labels=y)
    return _Drawn(images, z_out, _numbered(len(images)), grid=grid, nrow=nrow, labels=y)


def _first(labels, n: int):
    return None if labels is None else labels[:n]


class _Classes:
    """A conditional run's classes for the images of a mode (None for an unconditional run):
    --class NAME for every image; --class all for a class x seed grid of plain samples; A:B for
    an --interpolate walk across two classes with z fixed; no --class: the labels of a --latents
    file, else the classes in turn (image i is class i mod K)."""

    def __init__(self, args, sampler, mode: str, z):
        from .. import latent_space, sampling

        self.k, text = sampler.model.num_classes, args.klass
        self.all, self.pair = text == "all", None
        self.fixed = None
        if text is not None and ":" in text and mode == "interpolate":
            a, b = text.split(":", 1)
            self.pair = (sampling.class_labels(sampler, a)[0], sampling.class_labels(sampler, b)[0])
        elif text is not None:
            chosen = sampling.class_labels(sampler, text)  # also: needs a conditional run
            if self.all and mode != "sample":
                raise UsageError(
                    f"--class all draws a class x seed grid; name one class for --{mode}"
                )
            self.fixed = None if self.all else chosen[0]
        self.file = None
        if args.latents is not None and self.k and text is None:
            self.file = latent_space.read_labels(args.latents, self.k, len(z))
        if self.k and text is None and self.file is None and mode in ("nice", "arithmetic"):
            raise UsageError(f"{sampler.path} is a conditional run: name the class, --class NAME")

    def each(self, n: int):
        import numpy as np

        from .. import sampling

        if not self.k:
            return None
        if self.fixed is not None:
            return np.full(n, self.fixed, np.int64)
        if self.file is not None and len(self.file) == n:
            return self.file
        return sampling.cycled_labels(n, self.k)

    def walk(self, ends, steps: int):
        """--interpolate: within a class (z moves), or across two classes (z fixed, each row's
        class weights move from A to B)."""
        import numpy as np

        from .. import latent_space

        if self.pair is None:
            z_out = latent_space.interpolation(ends, steps)
            rows = self.each(len(ends) // 2)
            return z_out, None if rows is None else np.repeat(rows, steps)
        starts = ends[0::2]
        t = np.linspace(0, 1, steps, dtype=np.float32)
        weights = np.zeros((len(starts) * steps, self.k), np.float32)
        weights[:, self.pair[0]] = np.tile(1 - t, len(starts))
        weights[:, self.pair[1]] += np.tile(t, len(starts))
        return np.repeat(starts, steps, axis=0), weights

    def grid(self, z, nrow):
        """Plain samples: --class all repeats the latents for each class, a row per class."""
        import numpy as np

        if not self.all:
            return z, self.each(len(z)), nrow
        labels = np.repeat(np.arange(self.k, dtype=np.int64), len(z))
        return np.tile(z, (self.k, 1)), labels, len(z)


def _numbered(n: int) -> list[str]:
    return [f"{i:05d}.png" for i in range(n)]


def _write(folder: Path, drawn: _Drawn, record: dict) -> None:
    """The PNGs, scores.csv (--nice), grid.png and the generate.json marker into `folder`."""
    import numpy as np

    from ..images import make_grid, save_png

    for name, image in zip(drawn.names, drawn.images):
        save_png(folder / name, image.transpose(1, 2, 0))
    if drawn.scores is not None:
        with open(folder / "scores.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "rank", "d_logit"])
            writer.writerows(
                (name, i + 1, f"{s:.6f}")
                for i, (name, s) in enumerate(zip(drawn.names, drawn.scores))
            )
    if drawn.grid:
        grid = make_grid(np.ascontiguousarray(drawn.images), nrow=drawn.nrow)
        save_png(folder / "grid.png", grid)
    (folder / MARKER).write_text(json.dumps(record, indent=2) + "\n")


def _label(mode: str, args, seed: int) -> str:
    """The default output folder's name: mode, where the latents came from, truncation."""
    if mode == "nice":
        what = f"nice{args.nice:g}"
    elif mode == "interpolate":
        what = f"interpolate{args.interpolate}"
    elif mode == "seeds":
        what = "seeds" + args.seeds.replace(",", "_").replace(" ", "")[:40]
    else:
        what = mode
    if mode == "seeds":
        source = ""
    elif args.latents is not None:
        source = f"-latents-{args.latents.stem}"
    else:
        source = f"-seed{seed}"
    trunc = f"-trunc{args.truncation:g}" if args.truncation is not None else ""
    klass = f"-class{args.klass.replace(':', '-')}" if args.klass is not None else ""
    return f"{what}{klass}{source}{trunc}"
