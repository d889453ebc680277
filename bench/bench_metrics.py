"""Seconds per evaluation of each metric at --num images on this CPU, and the metric floors on
the bundled digits. Run: nice -n 5 python bench/bench_metrics.py [--num 10000]

Inception timings use RANDOM weights (same architecture and cost; values are meaningless) and
are extrapolated from --inception-images images, since 10k images take most of an hour on CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dcgan.datasets import load_digits
from dcgan.metrics import Evaluator
from dcgan.metrics.frechet import FeatureStats, frechet_distance, kernel_distance
from dcgan.metrics.inception import RANDOM, inception_features, inception_score, load_inception
from dcgan.perf import cpu_kind


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def blur(images: np.ndarray) -> np.ndarray:
    k = torch.tensor([1.0, 4, 6, 4, 1])
    k = (k[:, None] * k[None]) / 256
    x = torch.nn.functional.conv2d(torch.from_numpy(images).float(), k[None, None], padding=2)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def costs(
    real: np.ndarray, num: int, n_inception: int, cache: Path
) -> list[tuple[str, float, str]]:
    rng = np.random.default_rng(0)
    fake = real[rng.integers(0, len(real), num)]
    rows = []
    ev, prep = timed(lambda: Evaluator(real, ("digits",), cache_dir=cache))
    _, t = timed(lambda: ev(fake))
    rows.append(("digits (FD + coverage + confident + KL)", t, f"reference, once: {prep:.1f} s"))
    ev = Evaluator(real, ("swd",), cache_dir=cache)
    _, t = timed(lambda: ev(fake))
    rows.append(
        (
            "swd (2 levels at 28 px, 128 patches/image)",
            t,
            "NumPy; real descriptors recomputed each call",
        )
    )
    model = load_inception(RANDOM)
    batch = fake[:n_inception]
    _, t = timed(lambda: inception_features(batch, model, batch_size=50))
    per_image = t / n_inception
    rows.append(
        ("inception features, random weights", per_image * num, f"{per_image:.3f} s/image x {num}")
    )
    f1, f2 = rng.standard_normal((num, 2048)), rng.standard_normal((num, 2048))
    s2 = FeatureStats.of(f2)
    _, t = timed(lambda: frechet_distance(*_moments(FeatureStats.of(f1)), s2.mean, s2.cov))
    rows.append(("fid: statistics + distance on 2048-d features", t, "excluding features"))
    _, t = timed(lambda: kernel_distance(f1, f2))
    rows.append(("kid: 100 subsets of 1000 on 2048-d features", t, "excluding features"))
    logits = rng.standard_normal((num, 1008))
    _, t = timed(lambda: inception_score(logits))
    rows.append(("is: 10 splits from logits", t, "excluding features"))
    return rows


def _moments(stats: FeatureStats):
    return stats.mean, stats.cov


def floors(images: np.ndarray, cache: Path) -> list[tuple[str, dict]]:
    idx = np.random.default_rng(0).permutation(len(images))
    a, b = images[idx[:5000]], images[idx[5000:]]
    ev = Evaluator(b, ("digits", "swd"), cache_dir=cache)
    noise = np.random.default_rng(1).integers(0, 256, a.shape, dtype=np.uint8)
    cases = [
        ("real vs real (random halves, 5000 each)", a),
        ("real blurred (5x5 binomial) vs real", blur(a)),
        ("uniform noise vs real", noise),
    ]
    out = [(name, ev(x)) for name, x in cases]
    # MNIST's test set is ordered: its first 5000 images come from a different writer population
    ordered = Evaluator(images[5000:], ("digits", "swd"), cache_dir=cache)(images[:5000])
    out.insert(1, ("first 5000 vs last 5000 (file order)", ordered))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--num", type=int, default=10000)
    ap.add_argument("--inception-images", type=int, default=50)
    ap.add_argument("--skip-floors", action="store_true")
    args = ap.parse_args()
    print(cpu_kind(), flush=True)
    real = load_digits().images
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; real = bundled digits")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"\n| metric | seconds per evaluation at {args.num} | note |\n| --- | ---: | --- |")
        for name, t, note in costs(real, args.num, args.inception_images, Path(tmp)):
            print(f"| {name} | {t:.1f} | {note} |")
        if not args.skip_floors:
            print("\n| case | digits FD | coverage | confident | class KL | SWD x1e3 |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            for name, m in floors(real, Path(tmp)):
                print(
                    f"| {name} | {m['digits_fd']:.2f} | {m['digits_coverage']:.0f} | "
                    f"{m['digits_confident']:.3f} | {m['digits_kl']:.4f} | {m['swd']:.2f} |"
                )


if __name__ == "__main__":
    main()
