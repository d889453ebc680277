"""One process with T threads against T gloo processes with one thread each, on this machine:
the same run (the 64 px DCGAN, global batch 64) through `dcgan.train`, interleaved rounds,
img/s of the global batch from stats.jsonl (warm-up intervals left out), and the ratio.

    python bench/bench_ddp.py --threads 2 --steps 40 --rounds 3

Each configuration runs alone (never two at once). With --nproc N the second configuration is
torchrun with N processes; on a machine with GPUs, --device cuda compares 1 GPU with N GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
from dcgan.perf import cpu_kind  # noqa: E402 (imports no torch)


def worker(args) -> None:
    """One rank (or the single process): train on synthetic 64 px images, no grids."""
    import numpy as np

    from dcgan import train
    from dcgan.config import ModelConfig, RunConfig, TrainConfig
    from dcgan.datasets import ImageSet

    images = np.random.default_rng(0).integers(0, 256, (4096, 3, 64, 64), dtype=np.uint8)
    # the paper's 64 px DCGAN and settings, every recipe-owned field given (the recipe would add
    # DiffAugment at 64 px)
    config = RunConfig(
        model=ModelConfig(image_size=64, channels=3, g_features=64, d_features=64, d_norm="batch"),
        train=TrainConfig(
            batch_size=args.batch_size,
            epochs=20,
            lr_g=2e-4,
            lr_d=2e-4,
            n_critic=1,
            augment="",
            steps=args.steps,
            log_every=5,
            sample_every=10**9,
            checkpoint_every=10**9,
        ),
    )
    train(
        config,
        data=ImageSet(images=images, name="noise64"),
        runs_dir=args.runs_dir,
        name=args.name,
        device=args.device,
    )


def measure(args, nproc: int, threads: int, name: str) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    common = [
        "--worker", "--steps", str(args.steps), "--batch-size", str(args.batch_size),
        "--runs-dir", args.runs_dir, "--name", name, "--device", args.device,
    ]  # fmt: skip
    if nproc == 1:
        cmd = [sys.executable, __file__, *common]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += [f"--nproc-per-node={nproc}", __file__, *common]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:  # say why: the run may be on a lent GPU, with no second try
        sys.exit(f"{name}: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    stats = [json.loads(line) for line in (Path(args.runs_dir) / name / "stats.jsonl").open()]
    rates = [r["img_per_s"] for r in stats if "img_per_s" in r][2:]  # warm-up left out
    return statistics.median(rates)


def _parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="threads of the single process")
    p.add_argument("--nproc", type=int, default=2, help="processes of the DDP run")
    p.add_argument("--steps", type=int, default=40, help="at least 15 (3 log intervals of 5)")
    p.add_argument("--batch-size", type=int, default=64, help="the global batch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, a GPU per rank)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--runs-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--name", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.worker:
        if args.steps < 15:  # log_every 5, and the first two intervals are left out
            p.error("--steps must be at least 15 (three log intervals of 5 steps)")
        if args.batch_size % args.nproc:
            p.error(f"--batch-size {args.batch_size} must divide by --nproc {args.nproc}")
    return args


def main() -> None:
    args = _parse_args()
    if args.worker:
        return worker(args)
    print(cpu_kind(), flush=True)
    args.runs_dir = tempfile.mkdtemp(prefix="bench_ddp-")
    threads_each = max(1, args.threads // args.nproc) if args.device == "cpu" else 1
    solo, ddp = [], []
    for r in range(args.rounds):  # interleaved: drifts in machine load hit both alike
        solo.append(measure(args, 1, args.threads, f"solo{r}"))
        ddp.append(measure(args, args.nproc, threads_each, f"ddp{r}"))
        print(f"round {r}: 1 process x {args.threads} threads {solo[-1]:.1f} img/s, "
              f"{args.nproc} processes x {threads_each} thread(s) {ddp[-1]:.1f} img/s")  # fmt: skip
    a, b = statistics.median(solo), statistics.median(ddp)
    print(
        f"median: 1 process {a:.1f} img/s, {args.nproc} processes {b:.1f} img/s, ratio {b / a:.2f}x"
    )


if __name__ == "__main__":
    main()
