"""The precision default: whole `dcgan train` runs in fp32 and in what `--precision auto` picks.

    python bench/bench_precision.py --seeds 0,1                 # the default run on the digits
    python bench/bench_precision.py --seeds 0 -- --data cifar10_test_dir --image-size 32 \
        --steps 1500                                            # any other run: dcgan train's flags

Each seed trains the same run once per precision (`--precisions fp32,auto` by default; the
order alternates by seed, so neither side always runs on a cooler machine), each as its own
`python -m dcgan train` process as a user would start it, then scores the final generator with
`dcgan eval` (the digits metric and SWD on the digits, SWD elsewhere; fixed latents). Prints the
CPU kind, what auto resolved to, wall and training seconds, img/s, the metrics, and per seed the
ratio of training seconds and the metric differences. The final sample grids are copied to
OUT/grids/ to look at. Run it alone: two trainings at once on a small machine slow each other.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_load import rate  # noqa: E402 (bench/ is the script's folder)

from dcgan.perf import cpu_kind  # noqa: E402


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0", help="comma-separated training seeds")
    p.add_argument("--precisions", default="fp32,auto", help="comma-separated --precision values")
    p.add_argument("--num", type=int, default=10000, help="samples per evaluation")
    p.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder)")
    p.add_argument("--json", type=Path, help="append one JSON line per run to this file")
    return p.parse_args(argv), extra


def train(out: Path, name: str, precision: str, seed: int, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "dcgan", "train", "--runs-dir", str(out), "--name", name]
    cmd += ["--seed", str(seed), "--precision", precision, "--no-progress", *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    run = out / name
    info = json.loads((run / "info.json").read_text())
    last = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    return {
        "precision": precision,
        "resolved": info.get("precision", "?"),
        "seed": seed,
        "steps": last["step"],
        "wall_s": wall,
        "train_s": last["wall_time"],
        "img_per_s": rate(out, name),  # the median after the first (warm-up) interval
        "said": [line for line in proc.stderr.splitlines() if line.startswith("precision:")],
    }


def evaluate(run: Path, num: int) -> dict:
    cmd = [sys.executable, "-m", "dcgan", "eval", str(run), "--num", str(num), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["metrics"]
    keep = ("digits_fd", "digits_kl", "digits_coverage", "digits_confident", "swd")
    return {k: metrics[k] for k in keep if k in metrics}


def main() -> None:
    args, extra = parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    precisions = args.precisions.split(",")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_precision_"))
    (out / "grids").mkdir(parents=True, exist_ok=True)
    print(cpu_kind())
    print(f"dcgan train {' '.join(extra) or '(the default run)'}; runs in {out}")
    results: dict[tuple[int, str], dict] = {}
    for i, seed in enumerate(seeds):
        for precision in precisions if i % 2 == 0 else precisions[::-1]:
            name = f"{precision}-seed{seed}"
            r = train(out, name, precision, seed, extra)
            r |= evaluate(out / name, args.num)
            grids = sorted((out / name / "samples").glob("step_*.png"))
            if grids:
                shutil.copy(grids[-1], out / "grids" / f"{name}.png")
            results[seed, precision] = r
            shown = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in r.items()
                if k not in ("seed", "said")
            )
            print(f"seed {seed} {precision}: {shown}", flush=True)
            for line in r["said"]:
                print(f"  it said: {line}")
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps({"cpu": cpu_kind(), "args": extra} | r) + "\n")

    base, *others = precisions
    print(f"\nper seed, against {base}:")
    for seed in seeds:
        a = results[seed, base]
        for other in others:
            b = results[seed, other]
            parts = [f"training s {b['train_s'] / a['train_s']:.2f}x"]
            parts.append(f"img/s {b['img_per_s'] / a['img_per_s']:.2f}x")
            for k in ("digits_fd", "swd"):
                if k in a and k in b:
                    parts.append(f"{k} {a[k]:.1f} -> {b[k]:.1f}")
            print(f"seed {seed}, {other} ({b['resolved']}): " + ", ".join(parts))
    print(f"grids: {out / 'grids'}")


if __name__ == "__main__":
    main()
