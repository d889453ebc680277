"""Training a run as a library call, `dcgan.train(...)`, and the training loop, top to bottom.

`train` is the one entry point that the CLI, a notebook, torchrun and the tests call. It owns
create-or-resume, loading the data, the signal handlers, the loop, the divergence guard, the
final evaluation, checkpoint and GIF, and reports through `Callbacks`. The loop (`loop`) takes
each step's batch indices and random draws as pure functions of (seed, step, critic index) for
the global batch, gives this rank its shard, and runs the cadences (log, sample grid,
evaluation, checkpoint). Engines supply only the state and the step (`dcgan.engines.Engine`).

Torch-free: the engine is imported by name, so the NumPy engine's path never imports torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint as ckpt
from . import draw, rundir
from .config import PENALTY_LOSSES, RunConfig
from .datasets import ImageSet, batch_indices, steps_per_epoch
from .errors import CheckpointError, DcganError, UsageError
from .rundir import Run
from .tracking import RunViews
from .watch import CollapseWatch

# what a resume may change: the length, the engine and the speed options (not the model)
RESUMABLE = (
    "steps", "epochs", "engine", "precision", "channels_last", "compile", "on_divergence",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# what the caller hears


@dataclass
class TrainResult:
    """How a `train` call ended. status: "done", "stopped" (a signal; resume to go on) or
    "up-to-date" (a resume that had nothing to do)."""

    run_dir: Path
    status: str
    step: int
    total_steps: int
    seconds: float = 0.0  # training time of this call
    checkpoint: Path | None = None
    signal_name: str | None = None
    config: RunConfig | None = None
    rank: int = 0  # of a multi-process run: only rank 0 reports


class Callbacks:
    """What `train` reports as it goes; subclass and override what you need. Only rank 0 of a
    multi-process run calls them."""

    def started(self, run_dir: Path, config: RunConfig, data: ImageSet, step: int, end: int):
        """The run directory exists and training is about to start at `step` of `end`."""

    def progress(self, step: int) -> None:
        """A step finished (called every step: keep it cheap)."""

    def logged(self, record: dict[str, Any]) -> None:
        """One stats.jsonl record (step, epoch, losses, D(x), D(G(z)), img/s, wall_time)."""

    def sampled(self, step: int, path: Path) -> None:
        """A fixed-noise grid was written."""

    def evaluated(self, record: dict[str, Any], improved: bool) -> None:
        """A training-time evaluation ran; improved: it is the best checkpoint so far."""

    def message(self, text: str) -> None:
        """A one-line note or warning for the user (a resume across world sizes, collapse)."""

    def finished(self, result: TrainResult) -> None:
        """Training ended (the final checkpoint and GIF are written)."""


# ---------------------------------------------------------------------------------------------
# the public entry point


def train(
    config: RunConfig | None = None,
    *,
    resume: str | Path | None = None,
    changes: dict[str, Any] | None = None,
    runs_dir: str | Path = "runs",
    name: str | None = None,
    device: str = "auto",
    data: ImageSet | None = None,
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    callbacks: Callbacks | None = None,
    decode_progress: Callable | None = None,
    download_progress: Callable | None = None,
    handle_signals: bool = True,
    report: bool = True,
    report_every: int = 0,
    tensorboard: bool = False,
    threads: int | str = "auto",
) -> TrainResult:
    """Train a new run from `config` (default: the 28 px DCGAN on the bundled digits) into
    runs_dir/name, or continue the run directory `resume` (then `changes` may set the fields in
    RESUMABLE, e.g. {"steps": 5000}). Returns when the run is done or a signal stopped it.

    `data` overrides loading config.data.source (an ImageSet of uint8 (N, C, S, S) images).
    Under torchrun (WORLD_SIZE > 1) each rank calls this with the same arguments; rank 0 writes
    the run directory. SIGINT/SIGTERM save a checkpoint and return status "stopped".

    The run directory is locked while training (a second trainer of the same run gets a
    CheckpointError naming this process). `report`: write RUN/report.html at the end when the
    report extra (matplotlib) is installed; `report_every`: refresh it every N steps too (then
    the extra is required); `tensorboard`: also write TensorBoard events to RUN/tb/.

    `threads`: CPU threads for the torch engine. "auto" starts at torch's count, capped by a
    cgroup CPU quota (a container's --cpus), and adapts it to the cores other processes leave
    free (perf.ThreadGovernor; not under torchrun, and not when OMP_NUM_THREADS is set); a number
    fixes it, which keeps a run bit-exact under any load.
    """
    from .perf import openmp_env

    openmp_env()  # effective when torch is not loaded yet (a notebook that imported dcgan first)
    cb = callbacks or Callbacks()
    group = _process_group(config, resume, changes, device)
    quiet = cb if group.is_main else Callbacks()
    views = RunViews(report, report_every, tensorboard) if group.is_main else None
    held = contextlib.ExitStack()  # the run lock, released however _train ends
    stop = _StopFlag()
    try:
        with stop.installed(handle_signals):
            return _train(
                config, resume, changes, Path(runs_dir), name, device, data, cache_dir,
                data_dir, quiet, decode_progress, download_progress, group, stop, views, held,
                threads,
            )  # fmt: skip
    except DcganError:
        raise
    except OSError as e:  # a full disk elsewhere (stats, grids): name the file
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"no space left on the device writing {e.filename or 'the run directory'}; the "
                "newest checkpoint in the run is kept; free some space and resume"
            ) from None
        raise
    except Exception as e:
        if group.world > 1:
            from . import distributed

            if distributed.is_comm_error(e):
                raise distributed.lost_peer(e) from None
        raise
    finally:
        held.close()
        group.close()


def _train(
    config, resume, changes, runs_dir, name, device, data, cache_dir, data_dir, cb,
    decode_progress, download_progress, group, stop, views, held, threads,
) -> TrainResult:  # fmt: skip
    from .datasets import load_source

    # 1. the config: given, or the resumed run's with the allowed changes
    run, path = None, None
    if resume is not None:
        run = Run.open(Path(resume))
        if group.is_main:  # one trainer per run; also sweeps killed writes, cuts a torn line
            held.enter_context(run.lock())
        skipped = lambda p, why: cb.message(
            f"warning: skipped {p.name}, an older one is used: {why}"
        )
        path = rundir.find_checkpoint(run.path, on_skip=skipped)
        saved_meta = ckpt.read_meta(path)
        config = resume_config(RunConfig.from_dict(saved_meta["config"]), changes or {})
    else:
        if changes:
            raise UsageError("changes apply to a resumed run; put them in the config instead")
        config = (config or RunConfig()).validate()
    engine = _engine(config)
    dev = engine.resolve_device(device, group)
    governor = _threads(engine, threads, dev, group, cb.message)
    if str(dev) == "cpu":  # far fewer page faults per step (bench/README.md, training speed)
        from .perf import tune_malloc

        tune_malloc()
    _check_batch(config, group)
    if str(dev) == "cpu" and resume is None:  # a GPU has its own memory
        from .limits import check_step

        warning = check_step(config)  # refuses a step that cannot fit in this machine's memory
        if warning:
            cb.message(f"warning: {warning}")

    # 2. the data (rank 0 first: it prepares the cache that the other ranks then read)
    if data is None:
        load = lambda: load_source(
            config.data.source,
            config.model.image_size,
            config.data.channels,
            cache_dir,
            decode_progress if group.is_main else None,
            data_dir=data_dir or config.data.data_dir,
            split=config.data.split,
            on_bytes=download_progress if group.is_main else None,
        )
        data = _rank0_first(group, load)
    from .limits import check_batch

    check_batch(config, len(data))
    channels = data.images.shape[1]
    if resume is not None and channels != config.model.channels:
        raise UsageError(
            f"the data now has {channels} channels but the run was trained on "
            f"{config.model.channels}"
        )
    if resume is None:
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, channels=channels)
        ).validate()
    end = total_steps(config, len(data))

    # 3. the state: fresh or restored
    if resume is not None:
        state = engine.load_state(path, dev, config, group)
        if state.step >= end:  # nothing to do, so nothing is written
            cb.message(
                f"run {run.path} is already at step {state.step} of {end}; pass a larger "
                "--epochs or --steps to continue"
            )
            return TrainResult(
                run.path, "up-to-date", state.step, end, config=config, rank=group.rank
            )
        saved_world = saved_meta.get("world_size", 1)
        if saved_world != group.world:
            cb.message(
                f"resuming a run trained on {saved_world} process(es) on {group.world}: it "
                "continues, but is not bit-exact against staying at the same world size"
            )
    else:
        state = engine.create_state(config, dev, group)
    evaluator = _evaluator(config, data, dev, cache_dir) if group.is_main else None

    # 4. the run directory (rank 0 writes it; made only now that everything above has worked)
    if group.is_main:
        if run is None:
            default = f"{_slug(data.name)}-{config.model.kind}{config.model.image_size}"
            run = Run.create(runs_dir, name, config, default)
            held.enter_context(run.lock())
            run.save_real(data.images[:64])
        else:
            if run.config() != config:
                run.update_config(config)
            run.truncate_stats(state.step)
        run.update_info(
            device=str(dev),
            precision=state.precision,
            world_size=group.world,
            data=rundir.data_info(data),
        )
        cb = views.wrap(cb, run.path, state.step)  # report.html and TensorBoard, when asked
    run_dir = Path(group.broadcast(str(run.path) if run else None))
    hooks = _hooks(run, state, engine, config, evaluator, dev, cb) if group.is_main else Hooks()

    # 5. train, with the divergence guard around the loop; a signal from here on stops the loop
    # at the next step on every rank, and the checkpoint below is written
    stop.deferred = True
    hooks.should_stop, hooks.threads = stop, governor
    cb.started(run_dir, config, data, state.step, end)
    if config.train.precision == "auto" and state.precision != "fp32":
        cb.message(
            f"precision: {state.precision}, the faster one on this CPU (AMX); pass --precision "
            "fp32 to train in fp32"
        )
    started = time.perf_counter()
    rollbacks = 0
    while True:
        result = loop(engine, state, data, hooks)
        if result != "diverged":
            break
        state, config = _diverged(engine, state, config, run_dir, dev, group, rollbacks, cb)
        hooks = _hooks(run, state, engine, config, evaluator, dev, cb) if group.is_main else Hooks()
        hooks.should_stop, hooks.threads = stop, governor
        rollbacks += 1
    if hooks.evaluate and result == "done" and state.step % config.train.eval_every:
        hooks.evaluate(state)  # the final weights are a candidate for best too
    saved = _save(engine, state, run_dir, config) if group.is_main else None
    if group.is_main:  # the deployable generator: RUN/generator/{model.safetensors, config.json}
        from .artefact import write_generator

        write_generator(saved)
    group.barrier()  # nobody leaves (and so no launcher tears the group down) before the save
    took = time.perf_counter() - started
    if group.is_main:
        run.write_gif()
    out = TrainResult(
        run_dir, result, state.step, end, took, saved, stop.signal_name, config, group.rank
    )
    cb.finished(out)
    return out


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class StepInputs:
    """One generator step's inputs for this rank: n_critic real batches (model range, on the
    engine's device), their latents (one more for G's fresh fake when n_critic > 1) and, for
    losses with a gradient penalty, its interpolation weights. Latents and weights are host
    float32 arrays; each is this rank's rows of the global batch's draw."""

    reals: list
    z: list[np.ndarray]
    gp_weights: list[np.ndarray] | None = None


@dataclass
class Hooks:
    """What the loop reports to: `train` passes a run directory's writers, tests pass nothing."""

    on_log: Callable[[dict[str, float]], None] = lambda stats: None
    on_samples: Callable[[int, np.ndarray], None] = lambda step, images: None
    on_checkpoint: Callable[[Any], None] = lambda state: None
    on_progress: Callable[[int], None] = lambda step: None
    evaluate: Callable[[Any], dict[str, float]] | None = None
    eval_every: int = 0
    should_stop: Callable[[], bool] = lambda: False
    on_warning: Callable[[str], None] = lambda text: None  # warnings and notes, one line each
    threads: Any = None  # a perf.ThreadGovernor, told each step's time (None: threads fixed)


def loop(engine, state, data: ImageSet, hooks: Hooks) -> str:
    """Train `state` to its configured length. Returns "done"; "stopped" when hooks.should_stop()
    said so on any rank (every rank stops at the same step); "diverged" when a loss or D's
    output became non-finite (nothing is checkpointed after that). The caller saves a checkpoint
    afterwards; the loop calls hooks.on_checkpoint on cadence."""
    cfg, group = state.config.train, state.group
    n = len(data)
    spe = state.extra["steps_per_epoch"] = steps_per_epoch(n, cfg.batch_size)
    end = total_steps(state.config, n)
    batch = engine.feeder(state, data)
    watch = CollapseWatch(cfg.log_every, cfg.loss)
    sums: dict[str, Any] = {}
    count, last_time, last_step = 0, time.perf_counter(), state.step
    paused = 0.0  # seconds of this log interval spent on grids, evaluations and checkpoints
    while state.step < end:
        if group.any(hooks.should_stop()):
            return "stopped"
        began = time.perf_counter()
        inputs, epoch = step_inputs(state.config, state.step, n, batch, group)
        stats = engine.train_step(state, inputs)
        if hooks.threads is not None:  # fewer threads when other processes take cores
            note = hooks.threads.after_step(time.perf_counter() - began)
            if note:
                hooks.on_warning(note)
        for key, value in stats.items():
            sums[key] = sums[key] + value if key in sums else value
        count += 1
        state.step += 1
        hooks.on_progress(state.step)
        checkpoint_due = state.step % cfg.checkpoint_every == 0
        if state.step % cfg.log_every == 0 or state.step == end or checkpoint_due:
            now = time.perf_counter()
            state.elapsed += now - last_time
            record = {k: float(v) / count for k, v in sums.items()}  # one host sync per interval
            record = group.mean(record)
            if not all(math.isfinite(v) for v in record.values()):
                hooks.on_warning(
                    f"training diverged by step {state.step}: a loss became "
                    f"{'NaN' if any(math.isnan(v) for v in record.values()) else 'infinite'}"
                )
                return "diverged"
            images = (state.step - last_step) * cfg.batch_size * cfg.n_critic
            record |= {
                "step": state.step,
                "epoch": epoch,
                "img_per_s": images / max(now - last_time - paused, 1e-9),  # training alone
                "wall_time": state.elapsed,
            }
            if hooks.threads is not None:
                record["threads"] = hooks.threads.current
            hooks.on_log(record)
            for warning in watch.losses(record):
                hooks.on_warning(warning)
            sums, count, last_time, last_step, paused = {}, 0, now, state.step, 0.0
        started = time.perf_counter()
        epoch_end = (state.step * cfg.n_critic) % spe < cfg.n_critic
        if group.is_main and (state.step % cfg.sample_every == 0 or epoch_end or state.step == end):
            grid = engine.grid(state)
            hooks.on_samples(state.step, grid)
            for warning in watch.samples(state.step, grid):
                hooks.on_warning(warning)
        if hooks.evaluate is not None and hooks.eval_every and state.step % hooks.eval_every == 0:
            hooks.evaluate(state)
        if checkpoint_due:
            hooks.on_checkpoint(state)
        paused += time.perf_counter() - started
    return "done"


def step_inputs(
    config: RunConfig, step: int, n_images: int, batch, group
) -> tuple[StepInputs, int]:
    """The inputs of generator step `step` on this rank, and the epoch it is in. Batch indices,
    latents and penalty weights are drawn for the global batch from (seed, step, critic index)
    and sharded by rank, so the samples of a step are the same whatever the world size."""
    cfg, dim = config.train, config.model.latent_dim
    rank, world = group.rank, group.world
    reals, zs, weights, epoch = [], [], [], 0
    for k in range(cfg.n_critic):
        epoch, idx = batch_indices(n_images, cfg.batch_size, cfg.seed, step * cfg.n_critic + k)
        reals.append(batch(draw.shard(idx, rank, world)))
        z = draw.training_normal(cfg.seed, step, k, cfg.batch_size, dim)
        zs.append(draw.shard(z, rank, world))
        if cfg.loss in PENALTY_LOSSES:
            w = draw.training_uniform(cfg.seed, step, k, cfg.batch_size)
            weights.append(draw.shard(w, rank, world))
    if cfg.n_critic > 1:  # G's fresh fake after the critic steps
        z = draw.training_normal(cfg.seed, step, cfg.n_critic, cfg.batch_size, dim)
        zs.append(draw.shard(z, rank, world))
    return StepInputs(reals, zs, weights or None), epoch


def ema_decay(step: int, decay: float) -> float:
    """The EMA decay for the update after `step` generator steps: min(decay, (1 + step) / (10 +
    step)), the warm-up of TensorFlow's ExponentialMovingAverage. Without it the average is
    dominated by the untrained start for ~1/(1 - decay) steps (measured: at decay 0.999 the EMA
    generator still drew blobs at 1,400 steps, digits FD 621 against 106 for the raw one); with
    it the average spans about the last tenth of training until the step count reaches ~10 /
    (1 - decay)."""
    return min(decay, (1.0 + step) / (10.0 + step))


def total_steps(config: RunConfig, n_images: int) -> int:
    """Generator updates in the whole run: --steps, or --epochs over the data."""
    cfg = config.train
    if cfg.steps is not None:
        return cfg.steps
    return cfg.epochs * steps_per_epoch(n_images, cfg.batch_size) // cfg.n_critic


# ---------------------------------------------------------------------------------------------
# the pieces of train


def resume_config(saved: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """The resumed run's config with `changes` (only the fields in RESUMABLE; --epochs without
    --steps drops a saved step count, as a longer run in epochs is meant)."""
    bad = sorted(set(changes) - set(RESUMABLE))
    if bad:
        flags = ", ".join("--" + k.replace("_", "-") for k in bad)
        raise UsageError(
            f"{flags} cannot change on --resume; only --epochs/--steps/--device/--engine "
            "and the speed options can"
        )
    train = saved.train
    if "epochs" in changes and "steps" not in changes:
        changes = {**changes, "steps": None}
    train = dataclasses.replace(train, **changes)
    return dataclasses.replace(saved, train=train).validate()


def _engine(config: RunConfig):
    from .engines import get_engine

    return get_engine(config.train.engine)


def _process_group(config, resume, changes, device: str):
    """The process group torchrun describes, or a single process. Only the torch engine runs
    under several processes."""
    import os

    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        world = 1
    if world <= 1:
        return Solo()
    engine = (changes or {}).get("engine")
    if engine is None and resume is not None:
        engine = rundir.read_run_config(Path(resume)).train.engine
    engine = engine or (config or RunConfig()).train.engine
    if engine != "torch":
        raise UsageError(
            f"--engine {engine} runs in one process; under torchrun (WORLD_SIZE={world}) use "
            "--engine torch"
        )
    from . import distributed
    from .torch_engine import device_type

    return distributed.init_from_env(device_type(device))


def _threads(engine, threads: int | str, device, group, say=lambda message: None):
    """Apply a fixed thread count, or return the governor that adapts it ("auto"), or None.

    "auto" on a CPU starts from torch's count capped by the CPUs a cgroup quota grants
    (perf.available_cpus), and says so in one line when it caps."""
    if threads != "auto":
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4096:
            raise UsageError(f"--threads must be auto or a whole number from 1, not {threads!r}")
        if engine.cpu_threads(threads) is None:
            raise UsageError("--threads applies to the torch engine; NumPy chooses its own")
        return None
    if str(device) != "cpu" or group.world > 1 or "OMP_NUM_THREADS" in os.environ:
        return None  # a GPU, a launcher that divided the cores, or a user's fixed count
    count = engine.cpu_threads()
    if count is None:
        return None
    from .perf import ThreadGovernor, available_cpus, cpu_quota

    limit, cap = cpu_quota(), available_cpus()
    if limit and count > cap:  # (a count above the affinity mask alone is the user's choice)
        cpus, threads_word = f"CPU{'s' if limit != 1 else ''}", f"thread{'s' if cap != 1 else ''}"
        say(
            f"this process may use {limit:g} {cpus} (its cgroup's CPU quota): training on {cap} "
            f"{threads_word}, not {count} (--threads N fixes the count)"
        )
        count = engine.cpu_threads(cap)
    return ThreadGovernor(count, engine.cpu_threads)


def _check_batch(config: RunConfig, group) -> None:
    if config.train.batch_size % group.world:
        raise UsageError(
            f"--batch-size {config.train.batch_size} is the global batch and must divide by the "
            f"{group.world} processes"
        )


def _rank0_first(group, load):
    if group.is_main:
        out = load()
        group.barrier()
        return out
    group.barrier()
    return load()


def _evaluator(config: RunConfig, data: ImageSet, device, cache_dir):
    """The run's Evaluator, built before the run directory so that a missing Inception weights
    file fails at once, not after an hour (None when eval_every is off)."""
    if not config.train.eval_every:
        return None
    from .evaluation import training_evaluator

    return training_evaluator(config, data, device, cache_dir)


def _hooks(run, state, engine, config: RunConfig, evaluator, device, cb: Callbacks) -> Hooks:
    """The loop's hooks of rank 0: stats, grids, checkpoints and evaluations into the run."""

    def on_log(record):
        run.append_stats(record)
        cb.logged(record)

    def on_samples(step, images):
        cb.sampled(step, run.save_samples(step, images))

    evaluate = None
    if evaluator is not None:
        from .evaluation import TrainingEval

        def on_result(record, improved):
            run.append_stats(record)
            cb.evaluated(record, improved)

        evaluate = TrainingEval(evaluator, config, run.path, device, on_result)
    return Hooks(
        on_log=on_log,
        on_samples=on_samples,
        on_checkpoint=lambda s: _save(engine, s, run.path, config),
        on_progress=cb.progress,
        evaluate=evaluate,
        eval_every=config.train.eval_every,
        on_warning=cb.message,
    )


def _save(engine, state, run_dir: Path, config: RunConfig) -> Path:
    path = rundir.checkpoint_path(run_dir, state.step)
    if path.is_file() and state.step == _saved_step(path):
        return path  # the cadence saved this very step already
    arrays, meta = engine.state_to_arrays(state)
    try:
        return rundir.save_step_checkpoint(
            run_dir, state.step, arrays, meta, keep=config.train.keep_checkpoints
        )
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # atomic_write removed its temporary file: the older checkpoints are untouched
        need = sum(a.nbytes for a in arrays.values()) / 1e6
        kept = _newest_good(run_dir)
        last = f"the last good checkpoint {kept} is kept" if kept else "no checkpoint was saved"
        raise DiskFullError(
            f"no space left on the device writing {path} at step {state.step}; {last}; free at "
            f"least {need:.0f} MB in {path.parent} and resume with: dcgan train --resume {run_dir}"
        ) from None


def _saved_step(path: Path) -> int | None:
    try:
        return ckpt.read_meta(path).get("step")
    except CheckpointError:  # a corrupt file of this step (skipped on resume): overwrite it
        return None


def _diverged(engine, state, config, run_dir, device, group, rollbacks: int, cb: Callbacks):
    """After a non-finite loss: stop (on_divergence "stop", or out of retries), or roll back to
    the newest checkpoint (a fresh start when there is none) with half the learning rates."""
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
    path = _newest_good(run_dir)
    if path is None:
        new = engine.create_state(config, device, group)
        where = "the start"
    else:
        new = engine.load_state(path, device, config, group)
        where = f"step {new.step} ({path.name})"
    cb.message(
        f"training diverged at step {state.step}; rolled back to {where} with half the learning "
        f"rates (lr_g {train.lr_g:g}, lr_d {train.lr_d:g})"
    )
    if group.is_main:
        run = Run(run_dir)
        run.update_config(config)
        run.truncate_stats(new.step)
    return new, config


def _newest_good(run_dir: Path) -> Path | None:
    try:
        return rundir.find_checkpoint(run_dir)
    except CheckpointError:
        return None


class DiskFullError(DcganError):
    """A checkpoint could not be written for want of space."""


class DivergedError(DcganError):
    """Training produced non-finite losses and could not be rolled back."""


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "data"


class Solo:
    """The process group of a single process: rank 0 of 1, every collective a no-op."""

    rank, world, local_rank, is_main = 0, 1, 0, True

    def barrier(self) -> None:
        pass

    def any(self, flag: bool) -> bool:
        return flag

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        return values

    def broadcast(self, obj):
        return obj

    def close(self) -> None:
        pass


class Interrupted(DcganError):
    """A signal before training started (while loading or preparing the data): nothing of the
    run was written."""


@dataclass
class _StopFlag:
    """SIGINT/SIGTERM handling. Before the loop (loading data, building the state) a signal
    aborts at once: nothing has been written yet. Once `deferred`, it becomes a flag the loop
    polls, so every rank stops at the same step and the run is saved. A second signal stops at
    once (checkpoint files are atomic, so nothing is corrupted)."""

    signal_name: str | None = None
    deferred: bool = False

    def __call__(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if not self.deferred:
            error = Interrupted(
                f"interrupted by {name} before training started; nothing was written"
            )
            error.exit_code = 128 + signum
            raise error
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = name

    @contextlib.contextmanager
    def installed(self, enabled: bool = True):
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
