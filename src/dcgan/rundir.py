"""The run directory: its layout, and every reader and writer of what lives in it except the weight
files themselves (checkpoint.py reads and writes those; files.py does the atomic writes and JSON
lines). compare, eval, generate, the report and the trainer all go through here; summary.py reads
a whole run for compare and the report.

Layout of runs/<name>/:
    config.json           the run's RunConfig (what `generate` and `--resume` need)
    stats.jsonl           one JSON line per log interval, plus {"eval": true, ...} lines
    metrics.jsonl         one JSON line per `dcgan eval`
    info.json             what the trainer saw: data (count, skipped files), device, versions
    real_samples.png      a grid of training images
    samples/step_000000500.png   the fixed-noise grid by step; progress.gif made from them
    checkpoints/step_000001000.safetensors (a few kept), checkpoints/best.safetensors
    generated/<step>-<mode>-seed<S>/   `dcgan generate` output; report.html; tb/ (TensorBoard)
    .lock                 the trainer's advisory lock (holds its PID)

No torch here (the NumPy engine uses this module too) and no printing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint as ckpt
from . import files
from .config import RunConfig
from .errors import CheckpointError, DcganError, UsageError

CONFIG_FILE = "config.json"
STATS_FILE = "stats.jsonl"
METRICS_FILE = "metrics.jsonl"
INFO_FILE = "info.json"
REAL_FILE = "real_samples.png"
GIF_FILE = "progress.gif"
REPORT_FILE = "report.html"
LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
GENERATED_DIR = "generated"
TENSORBOARD_DIR = "tb"

_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")
_SAMPLE_FILE = re.compile(r"^step_(\d+)\.png$")
# what files.atomic_write leaves behind when killed mid-write: .<name>.<random>.tmp
_PARTIAL_WRITE = re.compile(r"^\..+\.tmp$")


# ---------------------------------------------------------------------------------------------
# paths and checkpoints


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:09d}.safetensors"


def best_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / "best.safetensors"


def save_step_checkpoint(
    run_dir: Path, step: int, arrays: dict[str, np.ndarray], meta: dict[str, Any], keep: int
) -> Path:
    """Write run_dir/checkpoints/step_N.safetensors, then prune all but the newest `keep`."""
    path = checkpoint_path(run_dir, step)
    ckpt.write_checkpoint(path, arrays, meta)
    prune_checkpoints(run_dir, keep)
    return path


def _numbered(folder: Path, pattern: re.Pattern) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    return _numbered(Path(run_dir) / CHECKPOINT_DIR, _STEP_FILE)


def checkpoint_step(path: Path) -> int | None:
    """The step in a step checkpoint's file name (None for best.safetensors and loose files)."""
    m = _STEP_FILE.match(Path(path).name)
    return int(m.group(1)) if m else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints (best.safetensors is never touched)."""
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def find_checkpoint(
    run: Path, which: str = "latest", on_skip: Callable[[Path, str], None] | None = None
) -> Path:
    """Resolve a run directory (or a checkpoint file, returned as is) to one checkpoint file.

    `which` is "latest" (the newest step checkpoint that reads back: a corrupt newer one, say a
    disk that filled, is skipped and `on_skip(path, reason)` told; when none reads back, the
    CheckpointError alone says why) or "best".
    """
    run = Path(run)
    if run.is_file():
        return run
    require_run_dir(run)
    if which == "best":
        if not best_path(run).is_file():
            raise CheckpointError(f"run {run} has no best checkpoint (train with --eval-every)")
        return best_path(run)
    if which != "latest":
        raise CheckpointError(f"unknown checkpoint {which!r}; use latest or best")
    candidates = list_checkpoints(run)
    if not candidates:
        raise CheckpointError(f"run {run} has no checkpoint yet")
    skipped = []
    for path in reversed(candidates):
        try:
            ckpt.check_checkpoint(path)
        except CheckpointError as e:
            skipped.append((path, str(e)))
            continue
        for bad, reason in skipped if on_skip is not None else ():
            on_skip(bad, reason)
        return path
    raise CheckpointError(f"no checkpoint of run {run} reads back: {skipped[0][1]}")


def is_run_dir(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / CONFIG_FILE).is_file()


def require_run_dir(run: Path) -> None:
    run = Path(run)
    if not run.is_dir():
        raise CheckpointError(f"run directory {run} does not exist")
    if not (run / CONFIG_FILE).is_file():
        raise CheckpointError(f"{run} is not a dcgan run directory (no {CONFIG_FILE})")


def read_run_config(run: Path) -> RunConfig:
    """RUN/config.json as a RunConfig; anything but a config there is one CheckpointError."""
    run = Path(run)
    require_run_dir(run)
    path = run / CONFIG_FILE
    try:
        raw = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{path} is unreadable ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} does not hold a config (found {type(raw).__name__})")
    try:
        return RunConfig.from_dict(raw)
    except DcganError as e:
        raise CheckpointError(f"{path} is not a usable config ({e})") from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{path} is not a usable config ({type(e).__name__}: {e})") from None


def output_dir(run_or_file: Path) -> Path:
    """Where `generate` and `eval` put what they write for a RUN argument.

    A run directory: itself. A checkpoint inside a run (RUN/checkpoints/x.safetensors, or a
    generator artefact RUN/generator/x.safetensors): that run. Any other (loose) checkpoint
    file: the folder that holds it, so `models/g.safetensors` writes `models/metrics.jsonl` and
    `models/generated/...`, never outside the folder the user pointed at.
    """
    path = Path(run_or_file)
    if path.is_dir():
        return path
    holder = path.parent
    if holder.name in (CHECKPOINT_DIR, "generator") and is_run_dir(holder.parent):
        return holder.parent
    return holder


def sweep_partial_writes(run_dir: Path) -> list[Path]:
    """Delete the temporary files of writes that were killed (`.step_*.safetensors.*.tmp`,
    `.config.json.*.tmp`): only call this while holding the run's lock. Returns what went."""
    gone = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT_DIR):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if _PARTIAL_WRITE.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)
                gone.append(p)
    return gone


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of RUN/metrics.jsonl (one per `dcgan eval`), oldest first."""
    return files.read_jsonl(Path(run_dir) / METRICS_FILE)


def append_metrics(run_dir: Path, record: dict[str, Any]) -> Path:
    """Append one line to RUN/metrics.jsonl (append-only, like stats.jsonl)."""
    path = Path(run_dir) / METRICS_FILE
    files.append_jsonl(path, record)
    return path


# ---------------------------------------------------------------------------------------------
# the lock: one trainer per run


class RunLock:
    """An advisory `flock` on RUN/.lock, holding the owner's PID. The kernel drops it when the
    process dies, however it dies (kill -9 included), so it is never stale."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointError(
                f"run {self.path.parent} is being trained by another process (pid {holder}); "
                "wait for it to finish or stop it"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (its PID is harmless)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------
# a run


class Run:
    """A run directory. Create one with `Run.create` (never overwrites) or `Run.open` one; the
    trainer then takes `run.lock()`."""

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
        files.write_json(path / CONFIG_FILE, config.to_dict())
        return run

    @classmethod
    def open(cls, path: Path) -> Run:
        require_run_dir(Path(path))
        return cls(path)

    def lock(self) -> RunLock:
        """Take the run's lock (a CheckpointError naming the holder's PID if another process has
        it), then sweep what killed writes left behind and cut a torn stats line. Release it with
        `.release()` or a `with` block; the process's exit releases it too."""
        lock = RunLock(self.path / LOCK_FILE).acquire()
        sweep_partial_writes(self.path)
        files.repair_jsonl(self.stats_path)
        return lock

    def config(self) -> RunConfig:
        return read_run_config(self.path)

    def update_config(self, config: RunConfig) -> None:
        files.write_json(self.path / CONFIG_FILE, config.to_dict())

    # -- files -----------------------------------------------------------------------------------

    @property
    def stats_path(self) -> Path:
        return self.path / STATS_FILE

    def checkpoints(self) -> list[Path]:
        return list_checkpoints(self.path)

    def find_checkpoint(self, which: str = "latest", on_skip=None) -> Path:
        return find_checkpoint(self.path, which, on_skip)

    def sample_files(self) -> list[Path]:
        """The fixed-noise grids, oldest first."""
        return _numbered(self.path / SAMPLES_DIR, _SAMPLE_FILE)

    def generated_dirs(self) -> list[Path]:
        """`dcgan generate` outputs (RUN/generated/<step>-<mode>-seed<S>), by name."""
        folder = self.path / GENERATED_DIR
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    # -- stats -----------------------------------------------------------------------------------

    def append_stats(self, record: dict) -> None:
        """One strict-JSON line per log interval (non-finite values as null)."""
        files.append_jsonl(self.stats_path, record)

    def read_stats(self) -> list[dict]:
        return files.read_jsonl(self.stats_path)

    def truncate_stats(self, step: int) -> None:
        """Drop lines past `step` (after a resume from an older checkpoint they would repeat) and
        any torn line."""
        if not self.stats_path.exists():
            return
        kept = [r for r in self.read_stats() if _step(r) <= step]
        text = "".join(json.dumps(files.strict_json(r), allow_nan=False) + "\n" for r in kept)
        files.atomic_write(self.stats_path, text.encode())

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.path)

    def info(self) -> dict[str, Any]:
        """RUN/info.json ({} when absent or unreadable)."""
        try:
            info = json.loads((self.path / INFO_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def update_info(self, **fields: Any) -> None:
        """Merge fields into RUN/info.json (what the trainer saw: data, device, versions)."""
        files.write_json(self.path / INFO_FILE, files.strict_json(self.info() | fields))

    # -- images ----------------------------------------------------------------------------------

    def save_real(self, images: np.ndarray) -> None:
        from .images import make_grid, save_png

        save_png(self.path / REAL_FILE, _viewable(make_grid(images)))

    def save_samples(self, step: int, images: np.ndarray, nrow: int | None = None) -> Path:
        from .images import make_grid, save_png

        path = self.path / SAMPLES_DIR / f"step_{step:09d}.png"
        save_png(path, _viewable(make_grid(images, nrow=nrow)))
        return path

    def write_gif(self, max_frames: int = 100) -> Path | None:
        """progress.gif from the sample grids (evenly thinned to max_frames, the last always kept)."""
        from PIL import Image

        from .images import save_gif

        grids = self.sample_files()
        if not grids:
            return None
        if len(grids) > max_frames:
            keep = np.unique(np.linspace(0, len(grids) - 1, max_frames).round().astype(int))
            grids = [grids[i] for i in keep]
        frames = []
        for f in grids:
            with Image.open(f) as im:
                frames.append(np.asarray(im.convert("RGB")))
        path = self.path / GIF_FILE
        save_gif(path, frames)
        return path


def data_info(data: Any) -> dict[str, Any]:
    """What info.json records about an ImageSet: its name, size, shape, cache and how many files
    could not be read (the report shows it)."""
    n, c, h, w = data.images.shape
    return {
        "name": data.name,
        "count": int(n),
        "shape": [int(c), int(h), int(w)],
        "skipped": len(data.skipped),
        "skipped_examples": [str(x) for x in data.skipped[:5]],
        "cache": str(data.cache_path) if data.cache_path is not None else None,
    }


def _step(record: dict) -> int:
    step = record.get("step", 0)
    return step if isinstance(step, int) else 0


def _viewable(grid: np.ndarray) -> np.ndarray:
    """Enlarge small grids (28 px digits) so they are readable in an image viewer."""
    from .images import upscale_nearest

    return upscale_nearest(grid, 2 if grid.shape[0] < 400 else 1)
