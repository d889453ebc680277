"""The checkpoint policy of a training run: when a state is written and where, what a full disk
does, which checkpoint is the newest good one, and the rollback after a divergence.

The files themselves are written by `dcgan.rundir` (safetensors + JSON, atomically); this
module decides. Torch-free: the engine turns its state into arrays.
"""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from . import rundir
from .config import RunConfig
from .errors import CheckpointError, DcganError


class DiskFullError(DcganError):
    """A checkpoint could not be written for want of space."""


class DivergedError(DcganError):
    """Training produced non-finite losses and could not be rolled back."""


def disk_full(error: OSError) -> bool:
    return error.errno in (errno.ENOSPC, errno.EDQUOT)


class Saver:
    """Writes a run's train states: `save` the step checkpoints (pruned to config's keep count),
    `save_best` the best one of the training-time evaluations. `steps_per_epoch` puts the epoch
    in each checkpoint's metadata."""

    def __init__(self, engine, run_dir: Path, config: RunConfig, steps_per_epoch: int = 1):
        self.engine, self.run_dir, self.config = engine, Path(run_dir), config
        self.steps_per_epoch = steps_per_epoch

    def arrays(self, state) -> tuple[dict[str, Any], dict[str, Any]]:
        arrays, meta = self.engine.state_to_arrays(state)
        meta["epoch"] = state.step * self.config.train.n_critic // self.steps_per_epoch
        return arrays, meta

    def save(self, state) -> Path:
        """RUN/checkpoints/step_N.safetensors for the state's step (once: the cadence may have
        written this step already). A full disk keeps the older checkpoints and says so."""
        path = rundir.checkpoint_path(self.run_dir, state.step)
        if path.is_file() and state.step == _saved_step(path):
            return path
        arrays, meta = self.arrays(state)
        try:
            return rundir.save_step_checkpoint(
                self.run_dir, state.step, arrays, meta, keep=self.config.train.keep_checkpoints
            )
        except OSError as e:
            if not disk_full(e):
                raise
            # atomic_write removed its temporary file: the older checkpoints are untouched
            need = sum(a.nbytes for a in arrays.values()) / 1e6
            kept = newest_good(self.run_dir)
            last = f"the last good checkpoint {kept} is kept" if kept else "no checkpoint was saved"
            raise DiskFullError(
                f"no space left on the device writing {path} at step {state.step}; {last}; free "
                f"at least {need:.0f} MB in {path.parent} and resume with: dcgan train --resume "
                f"{self.run_dir}"
            ) from None

    def save_best(self, state) -> Path:
        """RUN/checkpoints/best.safetensors: the state that scored best so far."""
        path = rundir.best_path(self.run_dir)
        ckpt.write_checkpoint(path, *self.arrays(state))
        return path


def _saved_step(path: Path) -> int | None:
    try:
        return ckpt.read_meta(path).get("step")
    except CheckpointError:  # a corrupt file of this step (skipped on resume): overwrite it
        return None


def newest_good(run_dir: Path) -> Path | None:
    """The newest checkpoint of the run that reads back, or None."""
    try:
        return rundir.find_checkpoint(run_dir)
    except CheckpointError:
        return None


def roll_back(engine, state, config: RunConfig, run_dir: Path, device, group, rollbacks: int):
    """After a non-finite loss: stop (on_divergence "stop", or out of retries), or go back to the
    newest checkpoint (a fresh start when there is none) with half the learning rates.
    Returns (the new state, its config, a one-line note for the user)."""
    cfg = config.train
    hint = "lower the learning rate (--lr) or try another --loss (e.g. hinge)"
    if cfg.on_divergence == "stop" or rollbacks >= cfg.max_rollbacks:
        tried = f" after {rollbacks} rollback(s)" if rollbacks else ""
        raise DivergedError(
            f"training diverged at step {state.step}{tried}: losses became non-finite; nothing "
            f"was saved after the last good checkpoint; {hint}"
        )
    train = dataclasses.replace(cfg, lr_g=cfg.lr_g / 2, lr_d=cfg.lr_d / 2)
    config = dataclasses.replace(config, train=train)
    path = newest_good(run_dir)
    if path is None:
        new = engine.create_state(config, device, group)
        where = "the start"
    else:
        new = engine.load_state(path, device, config, group)
        where = f"step {new.step} ({path.name})"
    note = (
        f"training diverged at step {state.step}; rolled back to {where} with half the learning "
        f"rates (lr_g {train.lr_g:g}, lr_d {train.lr_d:g})"
    )
    if group.is_main:
        run = rundir.Run(run_dir)
        run.update_config(config)
        run.truncate_stats(new.step)
    return new, config, note
