"""Training a run as a library call, `dcgan.train(...)`: the lifecycle of a run, in phases.

`train` is the one entry point that the CLI, a notebook, torchrun and the tests call. It reads
as its phases: config -> device -> data -> state -> run directory -> loop -> finish, each a short
function over one `Session`. The loop itself is `dcgan.loop`; the checkpoint policy is
`dcgan.saving`; signals are `dcgan.signals`. Reports go to `Callbacks`.

Torch-free: the engine is imported by name, so the NumPy engine's path never imports torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from . import files, rundir
from .config import RunConfig, resume_config
from .datasets import ImageSet, steps_per_epoch
from .engines import Solo, get_engine
from .errors import DcganError, UsageError
from .loop import Hooks, loop, total_steps
from .rundir import Run
from .saving import DiskFullError, Saver, disk_full, roll_back
from .signals import StopFlag
from .tracking import RunViews


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


@dataclass
class Session:
    """One `train` call's state as its phases fill it in."""

    config: RunConfig | None
    resume: Path | None
    loading: dict[str, Any]  # train's data arguments: data, cache_dir, data_dir, the progress
    cb: Callbacks
    group: Any
    stop: StopFlag
    held: contextlib.ExitStack  # the run lock, released however the call ends
    views: RunViews | None = None
    run: Run | None = None
    checkpoint: Path | None = None  # the one a resume starts from
    saved_world: int = 1
    engine: Any = None
    device: Any = None
    governor: Any = None
    data: ImageSet | None = None
    state: Any = None
    end: int = 0
    evaluator: Any = None
    run_dir: Path | None = None
    hooks: Hooks = field(default_factory=Hooks)


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
    """Train a new run from `config` (default: `RunConfig()`, the 28 px DCGAN on the bundled
    digits with the default recipe, exactly what `dcgan train` trains) into runs_dir/name, or
    continue the run directory `resume` (then `changes` may set the fields in config.RESUMABLE,
    e.g. {"steps": 5000}). Returns when the run is done or a signal stopped it.

    `data`: an ImageSet instead of config.data.source. Under torchrun each rank calls this
    alike; rank 0 writes the run. SIGINT/SIGTERM save a checkpoint and return "stopped".

    The run directory is locked while training (a second trainer gets a CheckpointError).
    `report`: RUN/report.html at the end (with matplotlib, the report extra), `report_every`:
    every N steps too (the extra required); `tensorboard`: TensorBoard events in RUN/tb/.

    `threads`: "auto" (perf.choose_threads) or a number, which keeps a run bit-exact.
    """
    from .perf import openmp_env

    openmp_env()  # effective when torch is not loaded yet (a notebook that imported dcgan first)
    group = _process_group(config, resume, changes, device)
    loading = dict(data=data, cache_dir=cache_dir, data_dir=data_dir)
    loading |= dict(decode_progress=decode_progress, download_progress=download_progress)
    s = Session(
        config=config,
        resume=Path(resume) if resume is not None else None,
        loading=loading,
        cb=(callbacks or Callbacks()) if group.is_main else Callbacks(),
        group=group,
        stop=StopFlag(),
        held=contextlib.ExitStack(),
        views=RunViews(report, report_every, tensorboard) if group.is_main else None,
    )
    with _errors_in_words(group), s.held, s.stop.installed(handle_signals):
        _configure(s, changes)
        _prepare_device(s, device, threads)
        _load_data(s)
        if not _build_state(s):  # a resumed run with nothing left to do: nothing is written
            return TrainResult(s.run.path, "up-to-date", s.state.step, s.end, rank=s.group.rank)
        _open_run_dir(s, Path(runs_dir), name)
        return _finish(s, *_train_loop(s))


@contextlib.contextmanager
def _errors_in_words(group):
    """dcgan's own errors pass; a full disk and a lost rank become one-line errors; the process
    group is closed however the call ends."""
    try:
        yield
    except DcganError:
        raise
    except OSError as e:  # a full disk elsewhere (stats, grids): name the file
        if disk_full(e):
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
        group.close()


# ---------------------------------------------------------------------------------------------
# the phases


def _configure(s: Session, changes: dict[str, Any] | None) -> None:
    """The config: the given one (the recipe fills what it leaves open), or the resumed run's
    with the allowed changes."""
    if s.resume is None:
        if changes:
            raise UsageError("changes apply to a resumed run; put them in the config instead")
        s.config = (s.config or RunConfig()).validate()
        return
    s.run = Run.open(s.resume)
    if s.group.is_main:  # one trainer per run; also sweeps killed writes, cuts a torn line
        s.held.enter_context(s.run.lock())
    skipped = lambda p, why: s.cb.message(f"warning: skipped {p.name}, an older one is used: {why}")
    s.checkpoint = rundir.find_checkpoint(s.run.path, on_skip=skipped)
    saved = ckpt.read_meta(s.checkpoint)
    s.saved_world = saved.get("world_size", 1)
    s.config = resume_config(RunConfig.from_dict(saved["config"]), changes or {})


def _prepare_device(s: Session, device: str, threads: int | str) -> None:
    """The engine, its device and CPU threads; refuses a step that cannot fit in memory."""
    from .perf import choose_threads, tune_malloc

    s.engine = get_engine(s.config.train.engine)
    s.device = s.engine.resolve_device(device, s.group)
    s.governor = choose_threads(
        s.engine.cpu_threads, threads, s.device, s.group.world, s.cb.message
    )
    if str(s.device) == "cpu":  # far fewer page faults per step (bench/README.md, training speed)
        tune_malloc()
    if s.config.train.batch_size % s.group.world:
        raise UsageError(
            f"--batch-size {s.config.train.batch_size} is the global batch and must divide by "
            f"the {s.group.world} processes"
        )
    if str(s.device) == "cpu" and s.resume is None:  # a GPU has its own memory
        from .limits import check_step

        warning = check_step(s.config)  # refuses a step that cannot fit in this machine's memory
        if warning:
            s.cb.message(f"warning: {warning}")


def _load_data(s: Session) -> None:
    """The images (rank 0 first: it prepares the cache that the other ranks then read); a new
    run takes its channel count from them."""
    from .datasets import load_source
    from .limits import check_batch

    src, cfg, main = s.loading, s.config, s.group.is_main
    s.data = src["data"]
    if s.data is None:
        load = lambda: load_source(
            cfg.data.source,
            cfg.model.image_size,
            cfg.data.channels,
            src["cache_dir"],
            src["decode_progress"] if main else None,
            data_dir=src["data_dir"] or cfg.data.data_dir,
            split=cfg.data.split,
            on_bytes=src["download_progress"] if main else None,
        )
        s.data = _rank0_first(s.group, load)
    classes = _classes(s)  # (a conditional run without labels fails here, in one line)
    check_batch(cfg, len(s.data))
    channels = s.data.images.shape[1]
    if s.resume is not None and channels != cfg.model.channels:
        raise UsageError(
            f"the data now has {channels} channels but the run was trained on {cfg.model.channels}"
        )
    if s.resume is None:
        model = dataclasses.replace(cfg.model, channels=channels, class_names=classes)
        s.config = dataclasses.replace(cfg, model=model).validate()
    elif classes != cfg.model.class_names:
        raise UsageError(
            f"the data's classes are now {', '.join(classes[:10])} but the run was trained "
            f"on {', '.join(cfg.model.class_names[:10])}"
        )
    s.end = total_steps(s.config, len(s.data))


def _classes(s: Session) -> tuple[str, ...]:
    """A conditional run's class names: the data's (which must have labels); () otherwise."""
    from .datasets import require_labels

    if not s.config.model.conditional:
        return ()
    require_labels(s.data, s.config.data.source)
    return tuple(s.data.class_names)


def _build_state(s: Session) -> bool:
    """The train state, fresh or restored; False when a resumed run has nothing left to do."""
    if s.resume is None:
        s.state = s.engine.create_state(s.config, s.device, s.group)
    else:
        s.state = s.engine.load_state(s.checkpoint, s.device, s.config, s.group)
        if s.state.step >= s.end:
            s.cb.message(
                f"run {s.run.path} is already at step {s.state.step} of {s.end}; pass a larger "
                "--epochs or --steps to continue"
            )
            return False
        if s.saved_world != s.group.world:
            s.cb.message(
                f"resuming a run trained on {s.saved_world} process(es) on {s.group.world}: "
                "it continues, but is not bit-exact against staying at the same world size"
            )
    if s.group.is_main and s.config.train.eval_every:
        # built before the run directory, so a missing Inception weights file fails at once
        from .evaluation import training_evaluator

        s.evaluator = training_evaluator(s.config, s.data, s.device, s.loading["cache_dir"])
    return True


def _open_run_dir(s: Session, runs_dir: Path, name: str | None) -> None:
    """Rank 0 creates the run directory (only now that everything above has worked) or brings a
    resumed one up to date; every rank learns its path."""
    if s.group.is_main:
        run, config = s.run, s.config
        if run is None:
            model = config.model
            default = f"{files.slug(s.data.name, 'data')}-{model.kind}{model.image_size}"
            run = s.run = Run.create(runs_dir, name, config, default)
            s.held.enter_context(run.lock())
            run.save_real(s.data.images[:64])
        else:
            if run.config() != config:
                run.update_config(config)
            run.truncate_stats(s.state.step)
        run.update_info(
            device=str(s.device),
            precision=s.state.precision,
            world_size=s.group.world,
            data=rundir.data_info(s.data),
        )
        s.cb = s.views.wrap(s.cb, run.path, s.state.step)  # report.html and TensorBoard
    s.run_dir = Path(s.group.broadcast(str(s.run.path) if s.run else None))


def _train_loop(s: Session) -> tuple[str, float]:
    """The loop, with the divergence guard around it. A signal from here on stops the loop at
    the next step on every rank, and the finish saves a checkpoint."""
    s.stop.deferred = True
    s.hooks = _hooks(s)
    s.cb.started(s.run_dir, s.config, s.data, s.state.step, s.end)
    if s.config.train.precision == "auto" and s.state.precision != "fp32":
        s.cb.message(
            f"precision: {s.state.precision}, the faster one on this CPU (AMX); pass "
            "--precision fp32 to train in fp32"
        )
    started = time.perf_counter()
    rollbacks = 0
    while (result := loop(s.engine, s.state, s.data, s.hooks)) == "diverged":
        s.state, s.config, note = roll_back(
            s.engine, s.state, s.config, s.run_dir, s.device, s.group, rollbacks
        )
        s.cb.message(note)
        s.hooks = _hooks(s)
        rollbacks += 1
    return result, time.perf_counter() - started


def _finish(s: Session, result: str, seconds: float) -> TrainResult:
    """The last evaluation, checkpoint, deployable generator and GIF, then the result."""
    state, main = s.state, s.group.is_main
    if s.hooks.evaluate and result == "done" and state.step % s.config.train.eval_every:
        s.hooks.evaluate(state)  # the final weights are a candidate for best too
    saved = _saver(s).save(state) if main else None
    if main:  # the deployable generator: RUN/generator/{model.safetensors, config.json}
        from .artefact import write_generator

        write_generator(saved)
    s.group.barrier()  # nobody leaves (and so no launcher tears the group down) before the save
    if main:
        s.run.write_gif()
    out = TrainResult(
        s.run_dir, result, state.step, s.end, seconds, saved, s.stop.signal_name, s.config,
        s.group.rank,
    )  # fmt: skip
    s.cb.finished(out)
    return out


# ---------------------------------------------------------------------------------------------
# the pieces


def _saver(s: Session) -> Saver:
    spe = steps_per_epoch(len(s.data), s.config.train.batch_size)
    return Saver(s.engine, s.run_dir, s.config, spe)


def _hooks(s: Session) -> Hooks:
    """The loop's hooks: on rank 0 stats, grids, checkpoints and evaluations into the run; on
    every rank the stop flag and the thread governor."""
    if not s.group.is_main:
        return Hooks(should_stop=s.stop, threads=s.governor)
    run, cb, saver = s.run, s.cb, _saver(s)
    nrow = 8 if s.config.model.conditional else None  # a row per class (draw.grid_draws)

    def on_log(record):
        run.append_stats(record)
        cb.logged(record)

    def on_samples(step, images):
        cb.sampled(step, run.save_samples(step, images, nrow))

    evaluate = None
    if s.evaluator is not None:
        from .evaluation import TrainingEval

        def on_result(record, improved):
            run.append_stats(record)
            cb.evaluated(record, improved)

        evaluate = TrainingEval(s.evaluator, s.engine, s.config, saver, s.device, on_result)
    return Hooks(
        on_log=on_log,
        on_samples=on_samples,
        on_checkpoint=saver.save,
        on_progress=cb.progress,
        evaluate=evaluate,
        eval_every=s.config.train.eval_every,
        on_warning=cb.message,
        should_stop=s.stop,
        threads=s.governor,
    )


def _process_group(config, resume, changes, device: str):
    """The process group torchrun describes, or a single process. Only the torch engine runs
    under several processes."""
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


def _rank0_first(group, load):
    out = load() if group.is_main else None
    group.barrier()
    return out if group.is_main else load()
