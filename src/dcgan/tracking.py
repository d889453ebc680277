"""Progress output of a training run, in the form that suits where it goes: a tqdm bar on a
terminal, one plain line per log interval in a pipe or a log file, one JSON object per interval
on stdout for tools (`--json-progress`), or only the final line (`--quiet`); and the optional
views the trainer keeps fresh (RUN/report.html, TensorBoard events).

The run directory itself (config.json, stats.jsonl, grids, checkpoints) is rundir.py's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from . import report as report_module
from .errors import DcganError
from .files import strict_json
from .report import format_duration

PROGRESS_MODES = ("auto", "bar", "lines", "json", "quiet", "off")


class Progress:
    """What the trainer reports progress to. `show(record)` once per log interval (a stats.jsonl
    record: step, epoch, img_per_s, loss_d, loss_g, d_real, d_fake), `update_to(step)` every
    step, `write(message)` for the odd line (an evaluation, a warning), `done(message)` for the
    final line, which every mode prints. This base class prints nothing but those two."""

    def __init__(self, total: int, initial: int, stream: IO[str] | None = None):
        self.total, self.initial, self.step = total, initial, initial
        self.stream = stream if stream is not None else sys.stderr
        self._started = time.monotonic()

    def update_to(self, step: int) -> None:
        self.step = step

    def show(self, record: dict[str, Any]) -> None:
        pass

    def write(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def done(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def close(self) -> None:
        pass

    def eta_seconds(self, step: int) -> float | None:
        """Seconds to the last step at this session's rate so far (None before any step)."""
        done, elapsed = step - self.initial, time.monotonic() - self._started
        if done <= 0 or elapsed <= 0:
            return None
        return (self.total - step) * elapsed / done


class QuietProgress(Progress):
    """`--quiet`: only the final line."""

    def write(self, message: str) -> None:
        pass


class LineProgress(Progress):
    """One plain line per log interval (stderr is a pipe or a file: no carriage returns)."""

    def show(self, record: dict[str, Any]) -> None:
        print(format_line(record, self.total, self.eta_seconds(record["step"])), file=self.stream)
        self.stream.flush()


class JsonProgress(Progress):
    """`--json-progress`: one strict-JSON object per log interval on `out` (stdout), with the
    total and the ETA added; messages still go to the stream (stderr)."""

    def __init__(self, total: int, initial: int, stream=None, out: IO[str] | None = None):
        super().__init__(total, initial, stream)
        self.out = out if out is not None else sys.stdout

    def show(self, record: dict[str, Any]) -> None:
        eta = self.eta_seconds(record["step"])
        line = {**record, "total": self.total, "eta_s": None if eta is None else round(eta, 1)}
        print(json.dumps(strict_json(line), allow_nan=False), file=self.out, flush=True)


class BarProgress(Progress):
    """A tqdm bar over training steps showing epoch, img/s, losses, D(x) and D(G(z))."""

    def __init__(self, total: int, initial: int, stream=None):
        super().__init__(total, initial, stream)
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, initial=initial, unit="step", dynamic_ncols=True, file=self.stream
        )

    def update_to(self, step: int) -> None:
        self.step = step
        self.bar.update(step - self.bar.n)

    def show(self, record: dict[str, Any]) -> None:
        self.bar.set_postfix(
            epoch=record["epoch"],
            img_s=f"{record['img_per_s']:.0f}",
            loss_d=_num(record.get("loss_d"), 3),
            loss_g=_num(record.get("loss_g"), 3),
            D_x=_num(record.get("d_real"), 2),
            D_G_z=_num(record.get("d_fake"), 2),
            refresh=False,
        )

    def write(self, message: str) -> None:
        self.bar.write(message, file=self.stream)

    def done(self, message: str) -> None:
        self.close()
        super().done(message)

    def close(self) -> None:
        self.bar.close()


def make_progress(
    mode: str,
    total: int,
    initial: int,
    stream: IO[str] | None = None,
    out: IO[str] | None = None,
) -> Progress:
    """The progress reporter for `mode`: "auto" (a bar when `stream` is a terminal, else lines),
    "bar", "lines", "json" (objects on `out`), "quiet" (the final line only) or "off" (no
    per-step output; messages and the final line still print). `stream` defaults to stderr."""
    stream = stream if stream is not None else sys.stderr
    if mode == "auto":
        mode = "bar" if is_terminal(stream) else "lines"
    if mode == "bar":
        return BarProgress(total, initial, stream)
    if mode == "lines":
        return LineProgress(total, initial, stream)
    if mode == "json":
        return JsonProgress(total, initial, stream, out)
    if mode == "quiet":
        return QuietProgress(total, initial, stream)
    if mode == "off":
        return Progress(total, initial, stream)
    raise ValueError(f"unknown progress mode {mode!r}; use one of {', '.join(PROGRESS_MODES)}")


def progress_mode(quiet: bool = False, json_progress: bool = False, progress: bool = True) -> str:
    """The mode for `dcgan train`'s flags: --json-progress, --quiet, --no-progress, or auto."""
    if json_progress:
        return "json"
    if quiet:
        return "quiet"
    return "auto" if progress else "off"


class RunViews:
    """The optional views of a run that `dcgan.train` keeps fresh: RUN/report.html (at the end
    when the report extra is installed, and every `report_every` steps, which requires it) and
    TensorBoard events in RUN/tb/ (which require the tensorboard extra). A missing extra that
    was asked for is a one-line DcganError at once, before any training."""

    def __init__(self, report: bool = True, report_every: int = 0, tensorboard: bool = False):
        if report_every:
            report_module.require()
        if tensorboard:
            from .tensorboard_log import require

            require()
        self.report = bool(report_every) or (report and report_module.available())
        self.report_every, self.tensorboard = report_every, tensorboard

    def wrap(self, callbacks, run_dir: Path, step: int):
        """`callbacks` (a runner.Callbacks) with the views added; `step`: where training starts
        (TensorBoard drops a killed session's events past it)."""
        if not (self.report or self.tensorboard):
            return callbacks
        return _ViewCallbacks(callbacks, self, Path(run_dir), step)


class _ViewCallbacks:
    """Forwards every callback to the caller's, then updates the views."""

    def __init__(self, inner, views: RunViews, run_dir: Path, step: int):
        self.inner, self.views, self.run_dir = inner, views, run_dir
        self.tb = None
        if views.tensorboard:
            from .rundir import TENSORBOARD_DIR
            from .tensorboard_log import TensorBoardHook

            self.tb = TensorBoardHook(run_dir / TENSORBOARD_DIR, purge_step=step)

    def __getattr__(self, name: str):  # callbacks this class does not know of
        return getattr(self.inner, name)

    def progress(self, step: int) -> None:
        self.inner.progress(step)
        every = self.views.report_every
        # on the step after a multiple of N, so the page has that step's line, grid and eval
        if every and step > 1 and (step - 1) % every == 0:
            self._refresh()

    def logged(self, record: dict[str, Any]) -> None:
        self.inner.logged(record)
        if self.tb is not None:
            self.tb.on_log(record)

    def sampled(self, step: int, path: Path) -> None:
        self.inner.sampled(step, path)
        if self.tb is not None:
            self.tb.on_samples(step, path)

    def evaluated(self, record: dict[str, Any], improved: bool) -> None:
        self.inner.evaluated(record, improved)
        if self.tb is not None:
            self.tb.on_eval(record)

    def finished(self, result) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.views.report:
            self._refresh()
        self.inner.finished(result)

    def _refresh(self) -> None:
        try:
            report_module.write_report([self.run_dir])
        except (DcganError, OSError) as e:  # a view failing never stops training
            self.inner.message(f"warning: {self.run_dir / 'report.html'} not refreshed ({e})")


def format_line(record: dict[str, Any], total: int, eta: float | None) -> str:
    """step 500/3000 (17%) | epoch 1 | 812 img/s | loss_d 0.512 loss_g 2.310 | D(x) 0.71
    D(G(z)) 0.29 | ETA 3m05s"""
    step = record["step"]
    pct = f" ({100 * step // total}%)" if total else ""
    parts = [
        f"step {step}/{total}{pct}",
        f"epoch {record.get('epoch', '-')}",
        f"{_num(record.get('img_per_s'), 0)} img/s",
        f"loss_d {_num(record.get('loss_d'), 3)} loss_g {_num(record.get('loss_g'), 3)}",
        f"D(x) {_num(record.get('d_real'), 2)} D(G(z)) {_num(record.get('d_fake'), 2)}",
        f"ETA {format_duration(eta)}",
    ]
    return " | ".join(parts)


def _num(value: Any, digits: int) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.{digits}f}"


def is_terminal(stream: IO[str]) -> bool:
    """Whether `stream` is a terminal (False for pipes, files, and streams with no file)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
