"""Class-conditional against unconditional, side by side in one run (issue 24's targets).

- digits: the default `dcgan train` run (recipe, length and all), with and without
  `--conditional`: class agreement (the shipped digit classifier labels each sample as its
  asked class), the digits FD of 2,000 samples, the class mix, and img/s (median of stats.jsonl).
- cifar: a class-subfolder folder (the CIFAR-10 test JPEGs in ../shared/datasets/cifar10_test)
  at 32 px, both stopped by SIGINT after the same training time: SWD of 2,000 samples against the
  10,000 images, intra-class SWD for the conditional run, img/s, and the two grids side by side.

    python bench/bench_conditional.py --sections digits,cifar --cifar-seconds 240

Each training runs alone (one after the other, never two at once). Prints a table and ratios.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10_test"
GRIDS = ROOT / "bench" / "grids"


def train(out: Path, name: str, args: list[str], seconds: float | None = None) -> Path:
    """`dcgan train` as a user runs it; with `seconds`, stopped by SIGINT after that long."""
    cmd = [sys.executable, "-m", "dcgan", "train", "--name", name, "--runs-dir", str(out)]
    cmd += ["--no-progress", "--no-report", *args]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    if seconds is not None:
        try:
            proc.wait(timeout=seconds + 30)  # data preparation and start-up come first
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    if proc.returncode not in (0, 130):
        raise SystemExit(f"{name} failed:\n{err}")
    print(f"  {name}: {time.perf_counter() - started:.0f} s wall", flush=True)
    return out / name


def img_per_s(run: Path) -> float:
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return statistics.median(r["img_per_s"] for r in records if "img_per_s" in r)


def samples(run: Path, n: int = 2000):
    from dcgan.sampling import cycled_labels, load_sampler, sample

    s = load_sampler(run, "cpu")
    labels = cycled_labels(n, s.model.num_classes)
    return s, sample(s, n, seed=1, labels=labels), labels


def digits(out: Path) -> None:
    from dcgan.datasets import load_digits
    from dcgan.metrics import compute_metrics
    from dcgan.metrics.digits import class_agreement, classify

    real = load_digits()
    rows = {}
    for name, extra in (("unconditional", []), ("conditional", ["--conditional"])):
        run = train(out, f"digits-{name}", extra)
        s, images, labels = samples(run)
        fd = compute_metrics(images, real, names=("digits",))["digits_fd"]
        mix = np.bincount(classify(images)[1].argmax(1), minlength=10) / len(images)
        agree = class_agreement(images, labels) if labels is not None else float("nan")
        rows[name] = dict(fd=fd, agree=agree, lo=mix.min(), hi=mix.max(), ips=img_per_s(run))
        rows[name]["steps"] = s.step
    print("\ndigits, the default run (dcgan train), 2,000 samples:")
    print(f"{'':15}{'steps':>7}{'digits FD':>11}{'agreement':>11}{'class mix':>14}{'img/s':>9}")
    for name, r in rows.items():
        mix = f"{r['lo']:.3f}-{r['hi']:.3f}"
        print(
            f"{name:15}{r['steps']:>7}{r['fd']:>11.1f}{r['agree']:>11.3f}{mix:>14}{r['ips']:>9.0f}"
        )
    ratio = rows["unconditional"]["ips"] / rows["conditional"]["ips"]
    print(f"conditional step cost: {ratio:.3f}x the unconditional step (img/s ratio)")


def cifar(out: Path, seconds: float) -> None:
    from dcgan.datasets import load_source
    from dcgan.metrics import Evaluator

    if not CIFAR.is_dir():
        raise SystemExit(f"{CIFAR} not found")
    real = load_source(str(CIFAR), 32, None, out / "cache")
    evaluator = Evaluator(real, ("swd",), use_cache=False)
    rows, grids = {}, []
    for name, extra in (("unconditional", []), ("conditional", ["--conditional"])):
        args = ["--data", str(CIFAR), "--image-size", "32", "--cache-dir", str(out / "cache")]
        run = train(out, f"cifar-{name}", [*args, *extra], seconds)
        s, images, labels = samples(run)
        r = dict(swd=evaluator(images)["swd"], ips=img_per_s(run), steps=s.step)
        if labels is not None:
            per = [
                Evaluator(real.images[real.labels == k], ("swd",), use_cache=False)(
                    images[labels == k]
                )["swd"]
                for k in range(10)
            ]
            r["intra"] = float(np.mean(per))
        rows[name] = r
        grids.append(sorted((run / "samples").glob("step_*.png"))[-1])
    print(f"\nCIFAR-10 test JPEGs (class subfolders), 32 px, {seconds:.0f} s of training each:")
    print(f"{'':15}{'steps':>7}{'SWD':>9}{'intra SWD':>11}{'img/s':>9}")
    for name, r in rows.items():
        intra = f"{r['intra']:.1f}" if "intra" in r else "-"
        print(f"{name:15}{r['steps']:>7}{r['swd']:>9.1f}{intra:>11}{r['ips']:>9.0f}")
    _side_by_side(grids, GRIDS / f"cifar32_conditional_vs_not_{seconds:.0f}s.png")


def _side_by_side(paths: list[Path], out: Path) -> None:
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    h = max(i.height for i in images)
    canvas = Image.new("RGB", (sum(i.width for i in images) + 16 * (len(images) - 1), h), "white")
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width + 16
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    print(f"grids (unconditional left, conditional right): {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", default="digits,cifar")
    p.add_argument("--cifar-seconds", type=float, default=240)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_conditional"))
    args = p.parse_args()
    args.out = args.out / time.strftime("%Y%m%d-%H%M%S")
    args.out.mkdir(parents=True, exist_ok=True)
    sections = args.sections.split(",")
    if "digits" in sections:
        digits(args.out)
    if "cifar" in sections:
        cifar(args.out, args.cifar_seconds)


if __name__ == "__main__":
    main()
