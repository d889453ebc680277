"""Data-path benchmarks: folder preparation on all cores vs a plain Pillow loop, and the cost of
feeding batches from the prepared (memory-mapped) cache vs one 64 px DCGAN training step.

    .venv/bin/python bench/bench_data.py [--folder ../shared/datasets/cifar10_test] [--size 64]
        [--rounds 3] [--no-feeding]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dcgan.folders import default_workers, list_image_files, load_folder
from dcgan.perf import cpu_kind

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10_test"


def plain_pillow_loop(files: list[Path], size: int, crop: int | None = None) -> np.ndarray:
    """The baseline a user would write: one process, open/convert/(crop)/resize/stack."""
    out = np.empty((len(files), 3, size, size), np.uint8)
    for i, p in enumerate(files):
        with Image.open(p) as img:
            img = img.convert("RGB")
            if crop:
                left, top = (img.width - crop) // 2, (img.height - crop) // 2
                img = img.crop((left, top, left + crop, top + crop))
            img = img.resize((size, size), Image.Resampling.LANCZOS)
            out[i] = np.asarray(img).transpose(2, 0, 1)
    return out


def make_photo_folder(source: Path, out: Path, n: int) -> Path:
    """n CelebA-sized JPEGs (178x218, quality 90) made by enlarging the source pictures: a
    folder whose decoding costs what real photos of that size cost."""
    for i, p in enumerate(list_image_files(source)[:n]):
        with Image.open(p) as img:
            big = img.convert("RGB").resize((178, 218), Image.Resampling.BICUBIC)
        big.save(out / f"{i:06d}.jpg", quality=90)
    return out


def bench_prepare(
    folder: Path, size: int, workers: int, rounds: int, crop: int | None = None
) -> dict[str, float]:
    """img/s of the plain loop, ours on 1 process and ours on `workers`, rounds interleaved
    (plain, 1, n, plain, 1, n, ...) so outside load hits them alike; medians over rounds. Ours
    is timed end to end: listing, fingerprint, pool start-up, decoding and the cache write."""
    files = list_image_files(folder)
    n = len(files)
    times: dict[str, list[float]] = {"plain": [], "serial": [], "parallel": []}
    for _ in range(rounds):
        t = time.perf_counter()
        plain_pillow_loop(files, size, crop)
        times["plain"].append(time.perf_counter() - t)
        for key, w in (("serial", 1), ("parallel", workers)):
            with tempfile.TemporaryDirectory() as cache:
                t = time.perf_counter()
                data = load_folder(folder, size, cache_dir=Path(cache), workers=w, crop=crop)
                times[key].append(time.perf_counter() - t)
                assert len(data) == n
    print("  rounds (s): " + ", ".join(f"{k} {[round(x, 2) for x in v]}" for k, v in times.items()))
    return {"images": n} | {k: n / statistics.median(v) for k, v in times.items()}


def bench_feeding(folder: Path, steps: int) -> None:
    import torch

    from dcgan import pixels
    from dcgan import torch_engine as training
    from dcgan.config import ModelConfig, RunConfig, TrainConfig
    from dcgan.loop import Hooks, loop

    with tempfile.TemporaryDirectory() as cache:
        load_folder(folder, 64, cache_dir=Path(cache))
        data = load_folder(folder, 64, cache_dir=Path(cache))  # the memory-mapped cache
        assert isinstance(data.images, np.memmap)
        n = len(data)
        # the paper's 64 px DCGAN and settings, every recipe-owned field given (the recipe would
        # add DiffAugment at 64 px)
        model = ModelConfig(image_size=64, channels=3, g_features=64, d_features=64, d_norm="batch")
        train = TrainConfig(
            batch_size=64, epochs=20, lr_g=2e-4, lr_d=2e-4, n_critic=1, augment="",
            steps=steps, log_every=10**6, sample_every=10**6,
        )  # fmt: skip
        config = RunConfig(model=model, train=train).validate()
        t, count = time.perf_counter(), 0
        from dcgan.datasets import batch_indices

        while time.perf_counter() - t < 2.0:
            _, idx = batch_indices(n, 64, 0, count)
            pixels.uint8_to_model(training._gather(data.images, idx, torch.device("cpu")))
            count += 1
        feed_s = (time.perf_counter() - t) / count
        state = training.create_state(config, torch.device("cpu"))
        loop(training, state, data, Hooks())  # warm-up (one sample grid at the end)
        state.config = dataclasses.replace(
            config, train=dataclasses.replace(config.train, steps=2 * steps)
        )
        profile = cProfile.Profile()
        t = time.perf_counter()
        profile.enable()
        loop(training, state, data, Hooks())
        profile.disable()
        step_s = (time.perf_counter() - t) / steps
    print(
        f"feeding: {1 / feed_s:,.0f} batches/s of 64x3x64x64 from the memmap ({feed_s * 1e3:.2f} ms/batch)"
    )
    print(
        f"training: {1 / step_s:.2f} steps/s of the 64 px DCGAN, batch 64 ({step_s * 1e3:.0f} ms/step)"
    )
    print(f"data path share of a step: {100 * feed_s / step_s:.3f} %")
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text).sort_stats("cumulative")
    stats.print_stats(r"_gather|batch_indices|uint8_to_model|train_step|\(loop\)|generate")
    print("profile of loop (cumulative s):")
    print("\n".join(line for line in text.getvalue().splitlines() if "{" not in line)[-1200:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--size", type=int, default=64, help="prepared side for the prep bench")
    parser.add_argument("--steps", type=int, default=4, help="timed 64 px training steps")
    parser.add_argument("--rounds", type=int, default=3, help="preparation rounds (median)")
    parser.add_argument("--no-feeding", action="store_true", help="only the preparation bench")
    parser.add_argument(
        "--photos",
        type=int,
        metavar="N",
        help="instead: N CelebA-sized JPEGs made from --folder, center crop 108 -> --size",
    )
    args = parser.parse_args()
    workers = default_workers(10**9)
    print(f"{cpu_kind()}, workers: {workers}, load average before: {os.getloadavg()}")
    if args.photos:
        with tempfile.TemporaryDirectory() as tmp:
            folder = make_photo_folder(args.folder, Path(tmp), args.photos)
            r = bench_prepare(folder, args.size, workers, args.rounds, crop=108)
        what = f"{r['images']} 178x218 JPEGs, crop 108"
    else:
        r = bench_prepare(args.folder, args.size, workers, args.rounds)
        what = f"{r['images']} JPEGs"
    print(
        f"prepare {what} -> {args.size} px: plain Pillow loop {r['plain']:,.0f} img/s, "
        f"ours 1 process {r['serial']:,.0f} img/s, ours {workers} processes {r['parallel']:,.0f} "
        f"img/s (x{r['parallel'] / r['plain']:.2f} vs plain, x{r['parallel'] / r['serial']:.2f} vs 1 process)"
    )
    if not args.no_feeding and not args.photos:
        bench_feeding(args.folder, args.steps)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
