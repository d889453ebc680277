"""`dcgan train`: parse and validate the options, then call `dcgan.session.train` (which resolves
the recipe, creates or resumes the run, trains, and saves on cadence, at the end and on
SIGINT/SIGTERM) with a progress bar as its callbacks. The options the user gave become a partial
RunConfig; the recipe (config.resolve) fills the rest, as it does for `dcgan.train`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import (
    D_NORMS,
    DEVICES,
    DIVERGENCE_ACTIONS,
    ENGINES,
    LOSSES,
    MODEL_KINDS,
    PAPER_TRAIN,
    PRECISIONS,
    RECIPES,
    RESUMABLE,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    check_resumable,
    check_seed,
)
from ..session import Callbacks
from ..tracking import progress_mode
from .eval import add_train_options, eval_metrics_option
from .options import bar, positive_float, positive_int, positive_int_or

# The options that are not the run's config (where and how it trains and reports): on --resume
# they may be given; every other option is the config's, and config.check_resumable decides.
_RUN_OPTIONS = {
    "device", "threads", "progress", "quiet", "json_progress", "report", "report_every",
    "tensorboard", "runs_dir", "cache_dir", "data_dir", "resume", "func", "command",
}  # fmt: skip

# The config's options: argparse dest -> (part of RunConfig, field). None means "not given": the
# recipe's choice (config.resolve), or on --resume the run's own value.
_CONFIG_OPTIONS = {
    "data": ("data", "source"), "split": ("data", "split"), "model": ("model", "kind"),
    "image_size": ("model", "image_size"), "latent_dim": ("model", "latent_dim"),
    "g_features": ("model", "g_features"), "d_features": ("model", "d_features"),
    "spectral_norm": ("model", "spectral_norm"), "d_norm": ("model", "d_norm"),
    "recipe": ("train", "recipe"), "loss": ("train", "loss"), "r1": ("train", "r1_gamma"),
    "batch_size": ("train", "batch_size"), "epochs": ("train", "epochs"),
    "steps": ("train", "steps"), "lr_g": ("train", "lr_g"), "lr_d": ("train", "lr_d"),
    "beta1": ("train", "beta1"), "n_critic": ("train", "n_critic"), "ema": ("train", "ema"),
    "ema_decay": ("train", "ema_decay"), "seed": ("train", "seed"),
    "log_every": ("train", "log_every"), "sample_every": ("train", "sample_every"),
    "checkpoint_every": ("train", "checkpoint_every"), "keep": ("train", "keep_checkpoints"),
    "eval_every": ("train", "eval_every"), "eval_num": ("train", "eval_num"),
    "engine": ("train", "engine"), "precision": ("train", "precision"),
    "channels_last": ("train", "channels_last"), "compile": ("train", "compile"),
    "on_divergence": ("train", "on_divergence"),
    "conditional": ("model", "conditional"), "grid_classes": ("train", "grid_classes"),
}  # fmt: skip


def register(sub) -> None:
    t0, m0 = TrainConfig(), ModelConfig()  # the defaults that no recipe changes
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
        help="generator width ngf (default: the recipe's, 64; 32 for the 28 px DCGAN)",
    )
    p.add_argument(
        "--d-features",
        type=positive_int,
        help="discriminator width ndf (default: the recipe's, 64; 32 for the 28 px DCGAN)",
    )
    p.add_argument(
        "--recipe",
        choices=RECIPES,
        help="default: what measures best (at 28 px width 32, batch 128, lr-g 8e-4 and lr-d "
        "1.6e-3; DiffAugment at 64 px and above); paper: Radford et al. as published (widths 64, "
        "lr 2e-4, batch 64, no augmentation)",
    )
    p.add_argument(
        "--conditional",
        action="store_true",
        default=None,
        help="class-conditional: G and D take the class (labels of the digits, a named set, "
        "class subfolders or a zip's dataset.json); then dcgan generate --class NAME",
    )
    p.add_argument(
        "--grid-classes",
        type=positive_int,
        metavar="N",
        help=f"a conditional run's sample grids: a row for each of the first N classes "
        f"(default {t0.grid_classes})",
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
        help=f"global batch (default {PAPER_TRAIN['batch_size']}; 128 for the 28 px DCGAN)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        help=f"passes over the data (default {PAPER_TRAIN['epochs']}; 50 for the 28 px DCGAN)",
    )
    p.add_argument("--steps", type=positive_int, help="generator updates; overrides --epochs")
    p.add_argument(
        "--lr",
        type=positive_float,
        help=f"learning rate of both nets (default {PAPER_TRAIN['lr_g']}; for the 28 px DCGAN lr-g 8e-4 "
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
    """The run's config from the options given: a partial config that the recipe completes
    (RunConfig resolves it through config.resolve, as for `dcgan.train`), validated."""
    parts: dict[str, dict] = {"model": {}, "data": {}, "train": {}}
    for dest, (part, name) in _CONFIG_OPTIONS.items():
        if getattr(args, dest) is not None:
            parts[part][name] = getattr(args, dest)
    train, data = parts["train"], parts["data"]
    if args.lr is not None:  # --lr sets both, unless one is given on its own
        train.setdefault("lr_g", args.lr)
        train.setdefault("lr_d", args.lr)
    if args.augment is not None:
        train["augment"] = "" if args.augment == "none" else args.augment
    if args.channels is not None:  # else resolved from the data before training
        parts["model"]["channels"] = data["channels"] = args.channels
    if args.data_dir is not None:
        data["data_dir"] = str(args.data_dir.absolute())
    # only with eval options: the metrics import torch, which the numpy engine must not
    if args.eval_every or args.eval_metrics or args.eval_num:
        train["eval_metrics"] = eval_metrics_option(args, args.data or DataConfig().source)
    config = RunConfig(
        model=ModelConfig(**parts["model"]),
        data=DataConfig(**data),
        train=TrainConfig(**train),
    )
    return config.validate()


def run(args) -> int:
    from ..session import train
    from .data import download_bar

    if args.seed is not None:
        check_seed(args.seed)
    changes = None
    if args.resume is not None:
        given = [k for k, v in vars(args).items() if v is not None and k not in _RUN_OPTIONS]
        check_resumable(given)
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
