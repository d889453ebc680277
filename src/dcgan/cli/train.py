"""`dcgan train`: parse and validate the options, then call `dcgan.runner.train` (which creates
or resumes the run, trains, and saves on cadence, at the end and on SIGINT/SIGTERM) with a
progress bar as its callbacks."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..config import (
    D_NORMS,
    DEVICES,
    DIVERGENCE_ACTIONS,
    ENGINES,
    LOSSES,
    MODEL_KINDS,
    PRECISIONS,
    RECIPES,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    recipe_defaults,
)
from ..draw import check_seed
from ..errors import UsageError
from ..runner import RESUMABLE, Callbacks
from ..tracking import progress_mode
from .eval import add_train_options, eval_metrics_option
from .options import bar, positive_float, positive_int, positive_int_or

# Training flags that belong to the run's config: None means "not given" (the config default, or
# on --resume the run's own value). Only the length and the engine may change on resume.
_RESUMABLE = {
    "epochs",
    "steps",
    "device",
    "threads",
    "engine",
    "precision",
    "channels_last",
    "compile",
    "on_divergence",
    "progress",
    "quiet",
    "json_progress",
    "report",
    "report_every",
    "tensorboard",
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
    p.add_argument(
        "--recipe",
        choices=RECIPES,
        help="default: what measures best (at 28 px width 32, batch 128, lr-g 8e-4 and lr-d "
        "1.6e-3; DiffAugment at 64 px and above); paper: Radford et al. as published (widths 64, "
        "lr 2e-4, batch 64, no augmentation)",
    )
    p.add_argument("--loss", choices=LOSSES, help=f"GAN loss (default {t0.loss})")
    p.add_argument(
        "--augment",
        metavar="POLICY",
        help="DiffAugment of every image D sees: a comma-separated subset of color,translation,"
        "cutout, or none (default: all three at 64 px and above, none below)",
    )
    p.add_argument(
        "--r1", type=float, metavar="GAMMA", help="R1 penalty weight on real images (default 0)"
    )
    p.add_argument(
        "--spectral-norm",
        action=argparse.BooleanOptionalAction,
        help="spectral normalisation of D's convolutions (default off)",
    )
    p.add_argument(
        "--d-norm",
        choices=D_NORMS,
        help="D's normalisation: batch (the paper), none or layer (default batch; layer for "
        "wgan-gp, whose penalty is invalid through BatchNorm)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help=f"global batch (default {t0.batch_size}; 128 for the 28 px DCGAN)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        help=f"passes over the data (default {t0.epochs}; 50 for the 28 px DCGAN)",
    )
    p.add_argument("--steps", type=positive_int, help="generator updates; overrides --epochs")
    p.add_argument(
        "--lr",
        type=positive_float,
        help=f"learning rate of both nets (default {t0.lr_g}; for the 28 px DCGAN lr-g 8e-4 "
        "and lr-d 1.6e-3)",
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
    p.add_argument(
        "--on-divergence",
        choices=DIVERGENCE_ACTIONS,
        help="when a loss becomes NaN or infinite: rollback (default: back to the newest "
        "checkpoint with half the learning rates, at most twice) or stop",
    )
    p.add_argument("--device", choices=DEVICES, help="where to train (default auto)")
    p.add_argument(
        "--threads",
        type=positive_int_or("auto", "auto"),
        help="CPU threads: auto (default: within a container's CPU quota, fewer while other "
        "processes take cores) or a fixed number, which keeps a run bit-exact under any load",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help="torch (default) or numpy: NumPy alone, no torch import (CuPy with --device cuda); "
        "on --resume the run's engine unless given",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="auto (default: bf16 on CPUs with AMX, fp32 elsewhere), fp32, or bf16: autocast, "
        "1.5-2.4x faster on CPUs with AMX, 1.2-1.7x with AVX512-BF16; on --resume the run's "
        "setting unless given",
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
    add_output_options(p)
    p.set_defaults(func=run)


def add_output_options(p) -> None:
    """How training reports: on stderr, in RUN/report.html, in TensorBoard."""
    p.add_argument(
        "--quiet", action="store_true", help="print only the final line (and errors) on stderr"
    )
    p.add_argument(
        "--json-progress",
        action="store_true",
        help="one JSON object per log interval on stdout (step, losses, img/s, ETA) for tools",
    )
    p.add_argument(
        "--report-every",
        type=positive_int,
        metavar="N",
        help="refresh RUN/report.html every N steps (it is always written at the end when "
        "matplotlib is installed: pip install 'dcgan[report]')",
    )
    p.add_argument(
        "--no-report", dest="report", action="store_false", help="no RUN/report.html at the end"
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write scalars, sample grids and metrics to RUN/tb/ for TensorBoard "
        "(pip install 'dcgan[tensorboard]')",
    )


def _config_from_args(args) -> RunConfig:
    from ..datasets import default_image_size

    source = args.data or "digits"
    size = args.image_size or default_image_size(source)
    kind = args.model or ModelConfig().kind
    loss = args.loss or TrainConfig().loss
    model_defaults, train_defaults = recipe_defaults(args.recipe or "default", kind, size, loss)
    if args.engine == "numpy":  # the recipe where the numpy engine's ops allow: no DiffAugment
        train_defaults.pop("augment", None)
    pick = lambda value, default: default if value is None else value
    m0 = dataclasses.replace(ModelConfig(), **model_defaults)
    t0 = dataclasses.replace(TrainConfig(), **train_defaults)
    model = ModelConfig(
        kind=kind,
        image_size=size,
        channels=args.channels or 1,  # resolved from the data before training
        latent_dim=args.latent_dim or m0.latent_dim,
        g_features=args.g_features or m0.g_features,
        d_features=args.d_features or m0.d_features,
        spectral_norm=pick(args.spectral_norm, m0.spectral_norm),
        d_norm=args.d_norm or m0.d_norm,
    )
    augment = (
        t0.augment if args.augment is None else ("" if args.augment == "none" else args.augment)
    )
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
        on_divergence=args.on_divergence or t0.on_divergence,
        augment=augment,
        r1_gamma=pick(args.r1, t0.r1_gamma),
        recipe=t0.recipe,
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
    from ..runner import train
    from .data import download_bar

    if args.seed is not None:
        check_seed(args.seed)
    changes = None
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
        changes = {k: getattr(args, k) for k in RESUMABLE if getattr(args, k) is not None}
    config = _config_from_args(args) if args.resume is None else None
    progress = _Progress(progress_mode(args.quiet, args.json_progress, args.progress))
    result = train(
        config,
        resume=args.resume,
        changes=changes,
        runs_dir=args.runs_dir,
        name=args.name,
        device=args.device or "auto",
        threads=args.threads or "auto",
        cache_dir=args.cache_dir,
        data_dir=args.data_dir,
        callbacks=progress,
        decode_progress=_bar(args, "decoding"),
        download_progress=download_bar(args.progress and not args.quiet),
        report=args.report,
        report_every=args.report_every or 0,
        tensorboard=args.tensorboard,
    )
    if result.status == "up-to-date" or result.rank != 0:  # rank 0 speaks for a torchrun
        return 0 if result.status != "stopped" else _stop_code(result)
    if result.status == "stopped":
        progress.done(
            f"stopped at step {result.step} of {result.total_steps} ({result.signal_name}); "
            f"checkpoint saved. Resume with: dcgan train --resume {result.run_dir}"
        )
        return _stop_code(result)
    report = result.run_dir / "report.html"
    shown = f", {report}" if report.is_file() else ""
    progress.done(
        f"done: {result.step} steps in {result.seconds:.0f} s. Samples: "
        f"{result.run_dir / 'samples'}, {result.run_dir / 'progress.gif'}{shown}. "
        f"Generate with: dcgan generate {result.run_dir} --num 64 --grid"
    )
    return 0


def _stop_code(result) -> int:
    return 130 if result.signal_name == "SIGINT" else 143


class _Progress(Callbacks):
    """The training callbacks of the command line: progress on stderr in the form `mode` asks
    for (tracking.make_progress: a bar, plain lines in a pipe, JSON on stdout, quiet), notes
    above it, and the final line."""

    def __init__(self, mode: str):
        self.mode = mode
        self.out = None

    def started(self, run_dir, config, data, step, end):
        from ..tracking import make_progress
        from .data import describe

        self.out = make_progress(self.mode, end, step)
        self.out.write(describe(data))

    def progress(self, step):
        self.out.update_to(step)

    def logged(self, record):
        self.out.show(record)

    def evaluated(self, record, improved):
        shown = ", ".join(
            f"{k} {v:.4g}"
            for k, v in record.items()
            if k not in ("step", "eval", "eval_seconds")
            and not k.startswith("swd_")
            and isinstance(v, int | float)
        )
        best = " (best so far)" if improved else ""
        self.message(f"eval at step {record['step']}: {shown}{best}")

    def message(self, text):
        if self.out is not None:
            self.out.write(text)
        elif self.mode != "quiet":
            print(text, file=sys.stderr)

    def finished(self, result):
        if self.out is not None:
            self.out.close()

    def done(self, text: str) -> None:
        """The final line: printed in every mode."""
        print(text, file=sys.stderr, flush=True)


def _bar(args, what: str):
    return bar(args.progress and not args.quiet, what)
