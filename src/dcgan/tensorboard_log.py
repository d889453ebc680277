"""`dcgan train --tensorboard`: the run's scalars, fixed-noise grids and metrics as TensorBoard
event files in RUN/tb/, through torch.utils.tensorboard (the `tensorboard` extra).

View them with `tensorboard --logdir runs`. Optional and write-only: the run directory's own
files (stats.jsonl, samples/) stay the record; this is a second view of the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import DcganError

# stats.jsonl keys -> TensorBoard tags
TRAIN_TAGS = {
    "loss_d": "loss/D",
    "loss_g": "loss/G",
    "d_real": "D_output/D(x)",
    "d_fake": "D_output/D(G(z))",
    "img_per_s": "speed/img_per_s",
    "epoch": "progress/epoch",
}
_NOT_METRICS = ("step", "eval", "eval_seconds")


def require() -> None:
    """A one-line DcganError naming the extra when tensorboard is missing (check before training)."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise DcganError(_MISSING)


_MISSING = "--tensorboard needs the tensorboard package: pip install 'dcgan[tensorboard]'"


class TensorBoardHook:
    """Writes what the trainer reports: `on_log(record)` per log interval, `on_samples(step,
    images)` per grid (uint8 (N, C, H, W), or the grid's PNG path), `on_eval(record)` per
    evaluation, `close()` at the end. `purge_step`: on a resume, the step it resumes from, so
    TensorBoard drops the events a killed session wrote past it."""

    def __init__(self, log_dir: Path, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise DcganError(_MISSING) from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step or None)

    def on_log(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        for key, tag in TRAIN_TAGS.items():
            if _finite(record.get(key)):
                self.writer.add_scalar(tag, record[key], step)

    def on_samples(self, step: int, images: np.ndarray | Path) -> None:
        if isinstance(images, np.ndarray):
            from .images import make_grid

            grid = make_grid(images)
        else:
            from PIL import Image

            with Image.open(images) as im:
                grid = np.asarray(im.convert("RGB"))
        if grid.ndim == 2:
            grid = grid[:, :, None]
        self.writer.add_image("samples/fixed_noise", grid, step, dataformats="HWC")

    def on_eval(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        for key, value in record.items():
            if key not in _NOT_METRICS and _finite(value):
                self.writer.add_scalar(f"metrics/{key}", value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
