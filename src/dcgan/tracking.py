"""The run directory and what training writes into it: config.json, stats.jsonl, sample grids,
real_samples.png, progress.gif, and the progress bar.

Layout: runs/<name>/{config.json, stats.jsonl, real_samples.png, samples/step_000500.png,
progress.gif, checkpoints/step_000001000.safetensors}.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import checkpoint as ckpt
from .config import RunConfig
from .errors import UsageError
from .images import make_grid, save_gif, save_png, upscale_nearest

_SAMPLE_FILE = re.compile(r"^step_(\d+)\.png$")


class Run:
    """A run directory. Create one with `Run.create` (never overwrites) or open one to resume."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path, name: str | None, config: RunConfig, default_name: str) -> Run:
        """Make runs_dir/name. An explicit name that exists is an error (resume it or pick another);
        without a name, default_name gets a -2, -3, ... suffix until it is new."""
        runs_dir = Path(runs_dir)
        if name is not None:
            if not re.fullmatch(r"[\w.-]+", name) or name in (".", ".."):
                raise UsageError(f"--name {name!r} must be letters, digits, '.', '_' or '-'")
            path = runs_dir / name
            if path.exists():
                raise UsageError(
                    f"run {path} already exists; resume it with --resume {path} or choose another --name"
                )
        else:
            path, k = runs_dir / default_name, 1
            while path.exists():
                k += 1
                path = runs_dir / f"{default_name}-{k}"
        path.mkdir(parents=True)
        run = cls(path)
        ckpt.write_json(path / ckpt.CONFIG_FILE, config.to_dict())
        return run

    @classmethod
    def open(cls, path: Path) -> Run:
        ckpt.require_run_dir(Path(path))
        return cls(path)

    def config(self) -> RunConfig:
        return ckpt.read_run_config(self.path)

    def update_config(self, config: RunConfig) -> None:
        ckpt.write_json(self.path / ckpt.CONFIG_FILE, config.to_dict())

    # -- stats -------------------------------------------------------------------------------

    def append_stats(self, record: dict) -> None:
        """One JSON line per log interval; append-only, flushed at once so a crash loses nothing."""
        with open(self.path / "stats.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def read_stats(self) -> list[dict]:
        path = self.path / "stats.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def truncate_stats(self, step: int) -> None:
        """Drop lines past `step`: after a resume from an older checkpoint they would repeat."""
        kept = [r for r in self.read_stats() if r.get("step", 0) <= step]
        ckpt.atomic_write(
            self.path / "stats.jsonl", "".join(json.dumps(r) + "\n" for r in kept).encode()
        )

    # -- images ------------------------------------------------------------------------------

    def save_real(self, images: np.ndarray) -> None:
        save_png(self.path / "real_samples.png", _viewable(make_grid(images)))

    def save_samples(self, step: int, images: np.ndarray) -> Path:
        path = self.path / "samples" / f"step_{step:09d}.png"
        save_png(path, _viewable(make_grid(images)))
        return path

    def sample_files(self) -> list[Path]:
        folder = self.path / "samples"
        if not folder.is_dir():
            return []
        found = [
            (int(m.group(1)), p) for p in folder.iterdir() if (m := _SAMPLE_FILE.match(p.name))
        ]
        return [p for _, p in sorted(found)]

    def write_gif(self, max_frames: int = 100) -> Path | None:
        """progress.gif from the sample grids (evenly thinned to max_frames, the last always kept)."""
        files = self.sample_files()
        if not files:
            return None
        if len(files) > max_frames:
            keep = np.unique(np.linspace(0, len(files) - 1, max_frames).round().astype(int))
            files = [files[i] for i in keep]
        frames = []
        for f in files:
            with Image.open(f) as im:
                frames.append(np.asarray(im.convert("RGB")))
        path = self.path / "progress.gif"
        save_gif(path, frames)
        return path


def _viewable(grid: np.ndarray) -> np.ndarray:
    """Enlarge small grids (28 px digits) so they are readable in an image viewer."""
    return upscale_nearest(grid, 2 if grid.shape[0] < 400 else 1)


class ProgressBar:
    """A tqdm bar over training steps showing epoch, img/s, losses, D(x) and D(G(z))."""

    def __init__(self, total: int, initial: int, enabled: bool = True):
        self.bar = tqdm(
            total=total, initial=initial, unit="step", disable=not enabled, dynamic_ncols=True
        )

    def update_to(self, step: int) -> None:
        self.bar.update(step - self.bar.n)

    def show(self, record: dict) -> None:
        self.bar.set_postfix(
            epoch=record["epoch"],
            img_s=f"{record['img_per_s']:.0f}",
            loss_d=f"{record['loss_d']:.3f}",
            loss_g=f"{record['loss_g']:.3f}",
            D_x=f"{record['d_real']:.2f}",
            D_G_z=f"{record['d_fake']:.2f}",
            refresh=False,
        )

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
