"""`dcgan eval`: score a run's generator (EMA when present) against real images, print a table
and append a line to RUN/metrics.jsonl."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..config import DEVICES
from .options import bar, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="score a trained run with FID, KID, IS, SWD or the digits metric",
        description="Generate images from a run (the EMA generator when it has one) and score them "
        "against real images. Prints a table and appends a JSON line to RUN/metrics.jsonl. "
        "fid, kid and is need the FID Inception weights (looked up in --inception-weights, "
        "$DCGAN_HOME, then the torch hub cache; downloaded when online).",
    )
    p.add_argument("run", type=Path, help="run directory (or checkpoint file)")
    p.add_argument(
        "--metrics",
        help="comma-separated: fid, kid, is, swd, digits (default: digits,swd for the bundled "
        "digits, swd otherwise)",
    )
    p.add_argument(
        "--num",
        type=positive_int,
        default=10000,
        help="generated images (default 10000; FID needs at least 2048)",
    )
    p.add_argument(
        "--ref",
        default="train",
        metavar="train|test|PATH",
        help="real images to compare with: the run's own training data (train, the default), the "
        "test split of its standard set (test), or a folder. The bundled digits and folders "
        "have no test split: there 'test' uses the training data and says so (the bundled "
        "digits are the MNIST test set)",
    )
    p.add_argument(
        "--checkpoint", default="latest", choices=("latest", "best"), help="which checkpoint"
    )
    p.add_argument(
        "--inception-weights",
        metavar="PATH",
        help="pt_inception-2015-12-05-6726825d.pth for fid/kid/is (checked by sha256)",
    )
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument(
        "--truncation",
        type=float,
        metavar="PSI",
        help="score truncated samples (as generate --truncation); such scores are not "
        "comparable with untruncated ones",
    )
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="images per forward pass (default: by image size and device; Inception 50)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        help="prepared-data and reference-statistics cache (default $DCGAN_HOME or ~/.cache/dcgan)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..artefact import resolve, run_dir_of
    from ..evaluation import default_metric_names, eval_record
    from ..metrics import check_sample_count
    from ..sampling import load_sampler

    names = _check_options(args)  # the cheap things, before loading weights or data
    path = resolve(args.run, args.checkpoint)  # a run, a checkpoint or a generator folder
    sampler = load_sampler(path, args.device, discriminator=False)
    explicit = names is not None
    names = names or default_metric_names(sampler.config)
    check_sample_count(names, args.num)
    real = _reference(sampler.config, args)
    if "digits" in names and real.name != "digits":
        names = _check_digits_reference(real, names, explicit)
    started = time.perf_counter()
    metrics, headline = _score(args, sampler, real, names)
    took = time.perf_counter() - started
    checkpoint = args.checkpoint if args.run.is_dir() else path.name
    if path.parent.name != "checkpoints" and path.name == "model.safetensors":
        checkpoint = "generator"
    record = eval_record(sampler.step, checkpoint, metrics, args.num, args.ref, args.seed, took)
    if args.truncation is not None:
        record["truncation"] = args.truncation
    # the table first: a read-only run or a full disk must not cost the scores just computed
    print(_table(metrics, headline), flush=True)
    if args.truncation is not None:
        print(
            f"note: samples drawn with --truncation {args.truncation:g}: these scores are not "
            "comparable with untruncated ones (or another PSI)"
        )
    summary = (
        f"{args.num} images from step {sampler.step} ({path.name}) vs {real.name} "
        f"({len(real)} images) in {took:.1f} s"
    )
    _append(run_dir_of(path), record, summary)
    return 0


def _check_options(args):
    """The metric names asked for (None: the run's defaults) and the sample count and truncation
    checked, before anything is loaded."""
    from ..draw import check_truncation
    from ..metrics import check_sample_count, parse_metric_names

    names = parse_metric_names(args.metrics) if args.metrics else None
    if names:
        check_sample_count(names, args.num)
    check_truncation(args.truncation)
    return names


def _score(args, sampler, real, names):
    """The metrics of args.num samples against `real`, and each ranking key's direction."""
    from ..metrics import METRICS, Evaluator

    evaluator = Evaluator(
        real,
        names,
        split=args.ref if args.ref in ("train", "test") else "folder",
        cache_dir=args.cache_dir,
        inception_weights=args.inception_weights,
        device=str(sampler.device),
        batch_size=args.batch_size or 50,
        progress=_bar(args, "inception", unit="batch"),
    )
    fake = _generate(sampler, args.num, args.seed, args.batch_size, args.progress, args.truncation)
    headline = {METRICS[n].key + evaluator.suffix: METRICS[n].lower_is_better for n in names}
    metrics = evaluator(fake)
    if sampler.model.num_classes:
        metrics |= _class_metrics(args, sampler, real, names, fake)
    return metrics, headline


def _class_metrics(args, sampler, real, names, fake) -> dict[str, float]:
    """A conditional run's: for the digits, class agreement (the share of samples the shipped
    classifier labels as the asked class); with a labelled reference of the same classes, each
    metric within each class (intra_*: the mean over classes) on the samples of that class."""
    import numpy as np

    from ..metrics import METRICS, Evaluator, cheap_metric_names
    from ..sampling import cycled_labels

    model, out = sampler.model, {}
    labels = cycled_labels(len(fake), model.num_classes)
    if model.class_names == tuple(str(d) for d in range(10)) and fake.shape[1:] == (1, 28, 28):
        from ..metrics.digits import class_agreement

        out["class_agreement"] = class_agreement(fake, labels)
    if real.labels is None or tuple(real.class_names or ()) != model.class_names:
        return out
    per_class: dict[str, list[float]] = {}
    names = [n for n in names if n in cheap_metric_names(True)]  # one reference per class
    for k in range(model.num_classes):
        mine, theirs = fake[labels == k], real.images[real.labels == k]
        if not len(theirs) or any(len(mine) < METRICS[n].min_samples for n in names):
            continue
        scores = Evaluator(theirs, tuple(names), use_cache=False, device=str(sampler.device))(mine)
        for key, value in scores.items():
            per_class.setdefault(key, []).append(value)
    return out | {f"intra_{key}": float(np.mean(v)) for key, v in per_class.items()}


def _append(run_dir: Path, record: dict, summary: str) -> None:
    """The record appended to RUN/metrics.jsonl; a failure to write is a warning (the scores
    were printed already)."""
    from ..rundir import append_metrics

    try:
        out = append_metrics(run_dir, record)
    except OSError as e:
        print(
            f"{summary}; warning: not appended to {run_dir / 'metrics.jsonl'} ({e.strerror or e})",
            file=sys.stderr,
        )
        return
    print(f"{summary}; appended to {out}", file=sys.stderr)


DIGITS_REFERENCE_MAX_FD = 300  # bundled digits vs subsets of themselves: 30-55; circles: 600+


def _check_digits_reference(real, names: tuple[str, ...], explicit: bool) -> tuple[str, ...]:
    """The digits metric scores against a reference of digits. A --ref that does not look like
    digits (its digits FD to the bundled digits above DIGITS_REFERENCE_MAX_FD) is refused when
    the metric was asked for, and dropped with a note when it was only the run's default."""
    import numpy as np

    from ..datasets import load_digits
    from ..errors import UsageError
    from ..metrics.digits import classify
    from ..metrics.frechet import FeatureStats, frechet_from_stats
    from ..metrics.reference import subset

    bundled = FeatureStats.of(classify(load_digits().images)[0])
    sample = np.array(subset(real.images, min(500, len(real)), 0))  # a writable copy
    fd = frechet_from_stats(FeatureStats.of(classify(sample)[0]), bundled)
    if fd <= DIGITS_REFERENCE_MAX_FD:
        return names
    why = (
        f"the reference {real.name} does not look like digits (digits FD {fd:.0f} to the "
        f"bundled digits; digit sets are below {DIGITS_REFERENCE_MAX_FD})"
    )
    if explicit or len(names) == 1:
        raise UsageError(f"--metrics digits needs digit images: {why}; use --metrics swd")
    print(f"note: {why}: leaving out the digits metric", file=sys.stderr)
    return tuple(n for n in names if n != "digits")


def _reference(config, args):
    """The real images for --ref, at the run's size and channels."""
    from ..datasets import STANDARD_SETS, load_source

    source, split = config.data.source, config.data.split
    if args.ref == "test":
        spec = STANDARD_SETS.get(source)
        if spec is not None and "test" in spec.splits:
            split = "test"
        else:
            print(
                f"note: {source} has no test split; --ref test uses the run's training data",
                file=sys.stderr,
            )
    elif args.ref != "train":
        source, split = args.ref, None
    return load_source(
        source,
        config.model.image_size,
        config.model.channels,
        args.cache_dir,
        _bar(args, "decoding"),
        data_dir=config.data.data_dir,
        split=split,
    )


def _generate(
    sampler, num: int, seed: int, batch_size: int | None, progress: bool, truncation=None
):
    """`sampling.sample` (same latents, same images) in chunks, with a progress bar."""
    import numpy as np

    from ..sampling import auto_batch_size, cycled_labels, from_latents, latents

    batch = batch_size or auto_batch_size(sampler.device, sampler.model.image_size)
    z = latents(num, sampler.model.latent_dim, seed, truncation=truncation)
    y = cycled_labels(num, sampler.model.num_classes)
    starts = range(0, len(z), batch)
    chunks = [(z[i : i + batch], None if y is None else y[i : i + batch]) for i in starts]
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc="generating", unit="batch", leave=False)
    return np.concatenate([from_latents(sampler, c, batch, labels) for c, labels in chunks])


def _table(metrics: dict[str, float], headline: dict[str, bool]) -> str:
    """metric | value, with the direction noted on each metric's ranking key."""
    width = max(len(k) for k in metrics) + 2
    lines = [f"{'metric':<{width}}value"]
    for key, value in metrics.items():
        line = f"{key:<{width}}{_fmt(value)}"
        if key in headline:
            line += f"  ({'lower' if headline[key] else 'higher'} is better)"
        lines.append(line)
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"


def _bar(args, what: str, unit: str = "img"):
    return bar(args.progress, what, unit)


# ---------------------------------------------------------------------------------------------
# `dcgan train --eval-every`: the options live here so cli/train.py only wires them in


def add_train_options(p, t0) -> None:
    """--eval-every, --eval-metrics, --eval-num for `dcgan train` (stored in the run config)."""
    p.add_argument(
        "--eval-every",
        type=positive_int,
        metavar="N",
        help="every N steps score the generator with cheap metrics and keep "
        "checkpoints/best.safetensors (default off)",
    )
    p.add_argument(
        "--eval-metrics",
        help="metrics for --eval-every, the first picks the best checkpoint (default digits,swd "
        "for the bundled digits, swd otherwise)",
    )
    p.add_argument(
        "--eval-num",
        type=positive_int,
        help=f"generated images per evaluation (default {t0.eval_num})",
    )


def eval_metrics_option(args, source: str) -> str:
    """The TrainConfig.eval_metrics of a new run: the chosen names, validated, or the defaults
    for its data, written out so the config says what was measured."""
    from ..errors import UsageError
    from ..metrics import cheap_metric_names, check_sample_count, parse_metric_names
    from ..metrics.inception import MIN_FID_SAMPLES

    if not args.eval_every:
        if args.eval_metrics or args.eval_num:
            raise UsageError("--eval-metrics and --eval-num need --eval-every N")
        return ""
    if args.eval_metrics:
        names = parse_metric_names(args.eval_metrics)
    else:
        names = cheap_metric_names(source == "digits")
    if "fid" in names and (args.eval_num or 0) < MIN_FID_SAMPLES:
        raise UsageError(f"--eval-metrics fid needs --eval-num >= {MIN_FID_SAMPLES}")
    if args.eval_num is not None:
        check_sample_count(names, args.eval_num, "--eval-num")
    return ",".join(names)
