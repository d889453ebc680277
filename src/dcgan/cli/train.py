"""`dcgan train`: build or resume a run, load its data, train with a progress bar, and save
checkpoints on cadence, at the end and on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import time
from pathlib import Path

from ..checkpoint import find_checkpoint
from ..config import (
    DEVICES,
    ENGINES,
    LOSSES,
    MODEL_KINDS,
    PRECISIONS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    size_defaults,
)
from ..errors import UsageError
from . import positive_float, positive_int
from .eval import add_train_options, eval_metrics_option, training_evaluator, training_hook

# Training flags that belong to the run's config: None means "not given" (the config default, or
# on --resume the run's own value). Only the length and the engine may change on resume.
_RESUMABLE = {
    "epochs",
    "steps",
    "device",
    "engine",
    "precision",
    "channels_last",
    "compile",
    "progress",
    "runs_dir",
    "cache_dir",
    "data_dir",
}


def register(sub) -> None:
    t0, m0 = TrainConfig(), ModelConfig()
    p = sub.add_parser(
        "train",
        help="train a GAN (default: the bundled MNIST digits)",
        description="Train a GAN. With no options it trains the 28 px DCGAN on the bundled MNIST "
        "digits for a few minutes on a CPU and writes everything to runs/<name>/.",
    )
    p.add_argument(
        "--data", help="'digits' (bundled MNIST test set, the default) or a folder of images"
    )
    p.add_argument("--model", choices=MODEL_KINDS, help=f"network (default {m0.kind})")
    p.add_argument(
        "--image-size",
        type=positive_int,
        help="image side in px (default 28 for digits, 64 for folders)",
    )
    p.add_argument(
        "--channels", type=int, choices=(1, 3), help="1 or 3 (default: 1 if all images are gray)"
    )
    p.add_argument("--latent-dim", type=positive_int, help=f"size of z (default {m0.latent_dim})")
    p.add_argument(
        "--g-features",
        type=positive_int,
        help=f"generator width ngf (default {m0.g_features}; 32 for the 28 px DCGAN)",
    )
    p.add_argument(
        "--d-features",
        type=positive_int,
        help=f"discriminator width ndf (default {m0.d_features}; 32 for the 28 px DCGAN)",
    )
    p.add_argument("--loss", choices=LOSSES, help=f"GAN loss (default {t0.loss})")
    p.add_argument("--batch-size", type=positive_int, help=f"default {t0.batch_size}")
    p.add_argument(
        "--epochs", type=positive_int, help=f"passes over the data (default {t0.epochs})"
    )
    p.add_argument("--steps", type=positive_int, help="generator updates; overrides --epochs")
    p.add_argument(
        "--lr",
        type=positive_float,
        help=f"learning rate of both nets (default {t0.lr_g}; 6e-4 for the 28 px DCGAN)",
    )
    p.add_argument("--lr-g", type=positive_float, help="generator learning rate")
    p.add_argument("--lr-d", type=positive_float, help="discriminator learning rate")
    p.add_argument("--beta1", type=float, help=f"Adam beta1 (default {t0.beta1})")
    p.add_argument(
        "--n-critic", type=positive_int, help="D updates per G update (default 1; 5 for wgan-gp)"
    )
    p.add_argument(
        "--ema", action="store_true", default=None, help="keep an EMA of G and sample from it"
    )
    p.add_argument("--ema-decay", type=float, help=f"EMA decay (default {t0.ema_decay})")
    p.add_argument("--seed", type=int, help=f"random seed (default {t0.seed})")
    p.add_argument(
        "--log-every", type=positive_int, help=f"steps per stats line (default {t0.log_every})"
    )
    p.add_argument(
        "--sample-every",
        type=positive_int,
        help=f"steps per sample grid (default {t0.sample_every})",
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        help=f"steps per checkpoint (default {t0.checkpoint_every})",
    )
    p.add_argument(
        "--keep", type=positive_int, help=f"checkpoints kept (default {t0.keep_checkpoints})"
    )
    add_train_options(p, t0)
    p.add_argument("--device", choices=DEVICES, help="where to train (default auto)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help="torch (default) or numpy: NumPy alone, no torch import (CuPy with --device cuda); "
        "on --resume the run's engine unless given",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="fp32 (default) or bf16: autocast, ~1.7x faster on CPUs with AVX512-BF16 or AMX",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        help=f"NHWC activations (default {'on' if t0.channels_last else 'off'})",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile G and D (a slow first step; pays off on long runs)",
    )
    p.add_argument("--name", help="run name (default: derived from data and model, made unique)")
    p.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="where runs live (default ./runs)"
    )
    p.add_argument(
        "--cache-dir", type=Path, help="prepared-data cache (default $DCGAN_HOME or ~/.cache/dcgan)"
    )
    p.add_argument(
        "--data-dir", type=Path, help="downloaded datasets (default $DCGAN_HOME/datasets)"
    )
    p.add_argument("--split", help="split of a named dataset: train (default), test, ...")
    p.add_argument(
        "--resume", type=Path, metavar="RUN", help="continue a run exactly where it stopped"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def _config_from_args(args) -> RunConfig:
    from ..datasets import default_image_size

    source = args.data or "digits"
    size = args.image_size or default_image_size(source)
    kind = args.model or ModelConfig().kind
    model_defaults, train_defaults = size_defaults(kind, size)
    m0 = dataclasses.replace(ModelConfig(), **model_defaults)
    t0 = dataclasses.replace(TrainConfig(), **train_defaults)
    model = ModelConfig(
        kind=kind,
        image_size=size,
        channels=args.channels or 1,  # resolved from the data before training
        latent_dim=args.latent_dim or m0.latent_dim,
        g_features=args.g_features or m0.g_features,
        d_features=args.d_features or m0.d_features,
    )
    loss = args.loss or t0.loss
    pick = lambda value, default: default if value is None else value
    train = TrainConfig(
        loss=loss,
        batch_size=pick(args.batch_size, t0.batch_size),
        epochs=pick(args.epochs, t0.epochs),
        steps=args.steps,
        lr_g=pick(args.lr_g, pick(args.lr, t0.lr_g)),
        lr_d=pick(args.lr_d, pick(args.lr, t0.lr_d)),
        beta1=pick(args.beta1, t0.beta1),
        n_critic=pick(args.n_critic, 5 if loss == "wgan-gp" else 1),
        ema=bool(args.ema),
        ema_decay=pick(args.ema_decay, t0.ema_decay),
        seed=pick(args.seed, t0.seed),
        log_every=pick(args.log_every, t0.log_every),
        sample_every=pick(args.sample_every, t0.sample_every),
        checkpoint_every=pick(args.checkpoint_every, t0.checkpoint_every),
        keep_checkpoints=pick(args.keep, t0.keep_checkpoints),
        eval_every=pick(args.eval_every, t0.eval_every),
        # only with eval options: the metrics import torch, which the numpy engine must not
        eval_metrics=eval_metrics_option(args, source)
        if args.eval_every or args.eval_metrics or args.eval_num
        else "",
        engine=args.engine or t0.engine,
        precision=args.precision or t0.precision,
        channels_last=pick(args.channels_last, t0.channels_last),
        compile=pick(args.compile, t0.compile),
        eval_num=pick(args.eval_num, t0.eval_num),
    )
    config = RunConfig(
        model=model,
        data=DataConfig(
            source=source,
            channels=args.channels,
            split=args.split or "train",
            data_dir=str(args.data_dir.absolute()) if args.data_dir else None,
        ),
        train=train,
    )
    return config.validate()


def run(args) -> int:
    from ..checkpoint import read_run_config
    from ..datasets import load_source
    from ..tracking import ProgressBar, Run
    from .data import describe, download_bar

    if args.resume is not None:
        given = [
            k
            for k, v in vars(args).items()
            if v is not None and k not in _RESUMABLE | {"resume", "func", "command"}
        ]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UsageError(
                f"{flags} cannot change on --resume; only --epochs/--steps/--device/--engine "
                "and the speed options can"
            )
    engine = args.engine
    if engine is None and args.resume is not None:
        engine = read_run_config(args.resume).train.engine
    training = _engine_module(engine or TrainConfig().engine)
    device = training.resolve_device(args.device or "auto")
    if str(device) == "cpu":  # far fewer page faults per step (bench/README.md, training speed)
        from ..perf import tune_malloc

        tune_malloc()
    if args.resume is not None:
        run = Run.open(args.resume)
        path = find_checkpoint(run.path)
        state = training.load_state(path, device)
        config = _extend(state.config, args)
        if config.train != state.config.train:  # rebuilt: a new layout or compile takes effect
            state = training.load_state(path, device, config)
        state.config = config
        run.update_config(config)
        run.truncate_stats(state.step)
    else:
        config = _config_from_args(args)
    data = load_source(
        config.data.source,
        config.model.image_size,
        config.data.channels,
        args.cache_dir,
        _bar(args, "decoding"),
        data_dir=args.data_dir or config.data.data_dir,
        split=config.data.split,
        on_bytes=download_bar(args.progress),
    )
    print(describe(data), file=sys.stderr)
    # built now so a missing weights file fails at once, not mid-run
    evaluator = training_evaluator(config, data, args, device) if config.train.eval_every else None
    if args.resume is None:
        channels = data.images.shape[1]
        config = RunConfig(
            model=_replace(config.model, channels=channels), data=config.data, train=config.train
        )
        default = f"{_slug(data.name)}-{config.model.kind}{config.model.image_size}"
        run = Run.create(args.runs_dir, args.name, config, default)
        run.save_real(data.images[:64])
        state = training.create_state(config, device)
    elif data.images.shape[1] != config.model.channels:
        raise UsageError(
            f"the data now has {data.images.shape[1]} channels but the run was trained on {config.model.channels}"
        )

    end = training.total_steps(config, len(data))
    if state.step >= end:
        print(
            f"run {run.path} is already at step {state.step} of {end}; pass a larger --epochs or --steps to continue",
            file=sys.stderr,
        )
        return 0
    bar = ProgressBar(end, state.step, enabled=args.progress)
    stop = _StopFlag()
    evaluate = training_hook(evaluator, config, run, device) if evaluator else None
    hooks = training.Hooks(
        on_log=lambda r: (run.append_stats(r), bar.show(r)),
        on_samples=run.save_samples,
        on_checkpoint=lambda s: training.save_checkpoint(
            s, run.path, config.train.keep_checkpoints
        ),
        on_progress=bar.update_to,
        should_stop=stop,
        evaluate=evaluate,
        eval_every=config.train.eval_every,
    )
    started = time.perf_counter()
    with stop.installed():
        result = training.fit(state, data, hooks)
        if evaluate and result == "done" and state.step % config.train.eval_every:
            evaluate(state)  # the final weights are a candidate for best too
        training.save_checkpoint(state, run.path, config.train.keep_checkpoints)
    bar.close()
    run.write_gif()
    took = time.perf_counter() - started
    if result == "stopped":
        print(
            f"stopped at step {state.step} of {end} ({stop.signal_name}); checkpoint saved. "
            f"Resume with: dcgan train --resume {run.path}",
            file=sys.stderr,
        )
        return 130 if stop.signal_name == "SIGINT" else 143
    print(
        f"done: {state.step} steps in {took:.0f} s. Samples: {run.path / 'samples'}, {run.path / 'progress.gif'}. "
        f"Generate with: dcgan generate {run.path} --num 64 --grid",
        file=sys.stderr,
    )
    return 0


def _engine_module(engine: str):
    """dcgan.train or dcgan.numpy_engine.train: the same functions, imported lazily (the numpy
    engine's path never imports torch)."""
    if engine == "numpy":
        from ..numpy_engine import train as numpy_training

        return numpy_training
    from .. import train as torch_training

    return torch_training


def _extend(config: RunConfig, args) -> RunConfig:
    """On resume, --epochs/--steps may lengthen the run and --engine switch it; nothing else."""
    if args.engine is not None and args.engine != config.train.engine:
        train = _replace(config.train, engine=args.engine)
        config = RunConfig(model=config.model, data=config.data, train=train).validate()
    speed = {k: getattr(args, k) for k in ("precision", "channels_last", "compile")}
    speed = {k: v for k, v in speed.items() if v is not None}
    if speed:  # speed options may change on resume (bf16 changes the numerics, not the model)
        train = _replace(config.train, **speed)
        config = RunConfig(model=config.model, data=config.data, train=train).validate()
    if args.epochs is None and args.steps is None:
        return config
    steps = (
        args.steps
        if args.steps is not None
        else (None if args.epochs is not None else config.train.steps)
    )
    epochs = args.epochs if args.epochs is not None else config.train.epochs
    train = _replace(config.train, steps=steps, epochs=epochs)
    return RunConfig(model=config.model, data=config.data, train=train).validate()


def _replace(obj, **changes):
    return dataclasses.replace(obj, **changes)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "data"


def _bar(args, what: str):
    if not args.progress:
        return None
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=what, unit="img", leave=False)


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the training loop polls, so it can save and exit cleanly.
    A second signal stops at once (the checkpoint files are atomic, so nothing is corrupted)."""

    def __init__(self):
        self.signal_name: str | None = None

    def __call__(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame):
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    @contextlib.contextmanager
    def installed(self):
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
