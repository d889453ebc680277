"""The `dcgan` command: parses and validates options, then calls the library.

Bad input ends in one line on stderr and a non-zero exit (2 for usage), never a traceback.
Nothing imports this module.
"""

from __future__ import annotations

import argparse
import csv
import signal
import sys
import time
from pathlib import Path

from . import __version__
from .config import DEVICES, LOSSES, MODEL_KINDS, DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import DcganError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (plus where to get help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dcgan", description="Train DCGANs on images and generate new ones.")
    parser.add_argument("--version", action="version", version=f"dcgan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_generate(sub)
    return parser


# Training flags that belong to the run's config: None means "not given" (the config default, or
# on --resume the run's own value). Only the length may change on resume.
_RESUMABLE = {"epochs", "steps", "device", "progress", "runs_dir", "cache_dir"}


def _add_train(sub) -> None:
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
        type=_positive_int,
        help="image side in px (default 28 for digits, 64 for folders)",
    )
    p.add_argument(
        "--channels", type=int, choices=(1, 3), help="1 or 3 (default: 1 if all images are gray)"
    )
    p.add_argument("--latent-dim", type=_positive_int, help=f"size of z (default {m0.latent_dim})")
    p.add_argument(
        "--g-features", type=_positive_int, help=f"generator width ngf (default {m0.g_features})"
    )
    p.add_argument(
        "--d-features",
        type=_positive_int,
        help=f"discriminator width ndf (default {m0.d_features})",
    )
    p.add_argument("--loss", choices=LOSSES, help=f"GAN loss (default {t0.loss})")
    p.add_argument("--batch-size", type=_positive_int, help=f"default {t0.batch_size}")
    p.add_argument(
        "--epochs", type=_positive_int, help=f"passes over the data (default {t0.epochs})"
    )
    p.add_argument("--steps", type=_positive_int, help="generator updates; overrides --epochs")
    p.add_argument(
        "--lr", type=_positive_float, help=f"learning rate of both nets (default {t0.lr_g})"
    )
    p.add_argument("--lr-g", type=_positive_float, help="generator learning rate")
    p.add_argument("--lr-d", type=_positive_float, help="discriminator learning rate")
    p.add_argument("--beta1", type=float, help=f"Adam beta1 (default {t0.beta1})")
    p.add_argument(
        "--n-critic", type=_positive_int, help="D updates per G update (default 1; 5 for wgan-gp)"
    )
    p.add_argument(
        "--ema", action="store_true", default=None, help="keep an EMA of G and sample from it"
    )
    p.add_argument("--ema-decay", type=float, help=f"EMA decay (default {t0.ema_decay})")
    p.add_argument("--seed", type=int, help=f"random seed (default {t0.seed})")
    p.add_argument(
        "--log-every", type=_positive_int, help=f"steps per stats line (default {t0.log_every})"
    )
    p.add_argument(
        "--sample-every",
        type=_positive_int,
        help=f"steps per sample grid (default {t0.sample_every})",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        help=f"steps per checkpoint (default {t0.checkpoint_every})",
    )
    p.add_argument(
        "--keep", type=_positive_int, help=f"checkpoints kept (default {t0.keep_checkpoints})"
    )
    p.add_argument("--device", choices=DEVICES, help="where to train (default auto)")
    p.add_argument("--name", help="run name (default: derived from data and model, made unique)")
    p.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="where runs live (default ./runs)"
    )
    p.add_argument(
        "--cache-dir", type=Path, help="prepared-data cache (default $DCGAN_HOME or ~/.cache/dcgan)"
    )
    p.add_argument(
        "--resume", type=Path, metavar="RUN", help="continue a run exactly where it stopped"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=cmd_train)


def _add_generate(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="write images from a trained run",
        description="Generate PNG images from a run directory (or a checkpoint file). Uses the EMA "
        "generator when the run has one. The same seed gives the same images.",
    )
    p.add_argument("run", type=Path, help="run directory (or checkpoint file)")
    p.add_argument("--num", type=_positive_int, default=64, help="how many images (default 64)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument(
        "--out", type=Path, help="output folder (default RUN/generated/<step>-<mode>-seed<S>)"
    )
    p.add_argument("--grid", action="store_true", help="also write grid.png with all images")
    p.add_argument(
        "--nice", type=float, metavar="P", help="draw N/P candidates, keep the N that D rates best"
    )
    p.add_argument(
        "--checkpoint", default="latest", choices=("latest", "best"), help="which checkpoint"
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.set_defaults(func=cmd_generate)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DcganError as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # disk full, permissions: still one line
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dcgan {args.command}: interrupted", file=sys.stderr)
        return 130


def _config_from_args(args) -> RunConfig:
    m0, t0 = ModelConfig(), TrainConfig()
    source = args.data or "digits"
    size = args.image_size or (28 if source == "digits" else 64)
    model = ModelConfig(
        kind=args.model or m0.kind,
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
    )
    config = RunConfig(
        model=model, data=DataConfig(source=source, channels=args.channels), train=train
    )
    return config.validate()


def cmd_train(args) -> int:
    from . import train as training
    from .datasets import load_source
    from .tracking import ProgressBar, Run

    if args.resume is not None:
        given = [
            k
            for k, v in vars(args).items()
            if v is not None and k not in _RESUMABLE | {"resume", "func", "command"}
        ]
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UsageError(
                f"{flags} cannot change on --resume; only --epochs/--steps/--device can"
            )
    device = training.resolve_device(args.device or "auto")
    if args.resume is not None:
        run = Run.open(args.resume)
        from .checkpoint import find_checkpoint

        path = find_checkpoint(run.path)
        state = training.load_state(path, device)
        config = _extend(state.config, args)
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
    )
    print(_describe_data(data), file=sys.stderr)
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
    hooks = training.Hooks(
        on_log=lambda r: (run.append_stats(r), bar.show(r)),
        on_samples=run.save_samples,
        on_checkpoint=lambda s: training.save_checkpoint(
            s, run.path, config.train.keep_checkpoints
        ),
        on_progress=bar.update_to,
        should_stop=stop,
    )
    started = time.perf_counter()
    with stop.installed():
        result = training.fit(state, data, hooks)
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


def _extend(config: RunConfig, args) -> RunConfig:
    """On resume, --epochs/--steps may lengthen the run; nothing else changes."""
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
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "data"


def _describe_data(data) -> str:
    n, c, h, w = data.images.shape
    text = f"data: {data.name}, {n} images, {c}x{h}x{w}"
    if data.from_cache:
        text += f" (prepared cache {data.cache_path})"
    if data.skipped:
        text += f"; skipped {len(data.skipped)} unreadable file(s), e.g. {data.skipped[0]}"
    return text


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

    def installed(self):
        import contextlib

        @contextlib.contextmanager
        def scope():
            previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

        return scope()


def cmd_generate(args) -> int:
    import numpy as np

    from .images import make_grid, save_png
    from .sampling import load_sampler, nice, sample
    from .train import resolve_device

    device = resolve_device(args.device)
    sampler = load_sampler(args.run, device, args.checkpoint)
    scores = None
    if args.nice is not None:
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
        save_png(out / "grid.png", make_grid(np.ascontiguousarray(images)))
    extra = " and scores.csv" if scores is not None else ""
    print(
        f"wrote {len(images)} images{extra} to {out} (checkpoint step {sampler.step})",
        file=sys.stderr,
    )
    return 0
