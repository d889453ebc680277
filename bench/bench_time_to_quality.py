"""Time to quality on the bundled digits: how long a training recipe takes to draw recognisable
digits, by the shipped digits metric, on this CPU.

    .venv/bin/python bench/bench_time_to_quality.py [--recipes default,w32-lr4,...] [--steps 3200]
        [--eval-every 200] [--threads 2] [--seeds 0] [--fd 100]

Each recipe trains from scratch with `dcgan.loop.loop` (the loop `dcgan train` runs) and is
scored every --eval-every steps: digits Frechet distance, coverage and confident share of 2,000
samples from fixed latents (the sampler `dcgan generate` uses: the EMA generator when there is
one) against the bundled digits. Training seconds exclude the scoring. A recipe reaches quality
at the first evaluation with digits FD <= --fd and all 10 classes covered; the thresholds come
from the metrics floors in bench/README.md (real vs real 1.7, the 1,200-step learning check ~116,
uniform noise ~1,640).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from dcgan import torch_engine  # noqa: E402
from dcgan.config import ModelConfig, RunConfig, TrainConfig, size_defaults  # noqa: E402
from dcgan.datasets import load_digits  # noqa: E402
from dcgan.images import make_grid, save_png  # noqa: E402
from dcgan.loop import Hooks, loop  # noqa: E402
from dcgan.metrics import Evaluator  # noqa: E402
from dcgan.perf import cpu_kind  # noqa: E402
from dcgan.sampling import latents  # noqa: E402
from dcgan.torch_engine import create_state, generate  # noqa: E402


def parse_recipe(name: str) -> tuple[dict, dict]:
    """A recipe named by its changes to the defaults, dash-separated: "default" (what `dcgan
    train` uses at 28 px: config.size_defaults), "paper" (width 64, lr 2e-4), wN (g_features = d_features = N), gN / dN (one of them), bN (batch size), lrX
    (both learning rates X * 1e-4), lrgX / lrdX (one of them), emaD (EMA with decay 0.D, e.g.
    ema999), noema, epochsN, fp32 / bf16 (else --precision auto: bf16 on AMX CPUs). "w32-b64-lr4-ema999" is the 28 px net at width 32, batch 64,
    lr 4e-4 and an EMA of decay 0.999."""
    model, train = size_defaults("dcgan", 28)
    for token in name.split("-"):
        if token == "default":
            continue
        if token == "paper":  # the defaults before the 28 px recipe: pytorch/examples' settings
            model |= {"g_features": 64, "d_features": 64}
            train |= {"lr_g": 2e-4, "lr_d": 2e-4}
            continue
        if token == "noema":
            train["ema"] = False
            continue
        if token in ("fp32", "bf16"):  # else the library's default, auto (bf16 on AMX CPUs)
            train["precision"] = token
            continue
        m = re.fullmatch(r"(w|g|d|b|lrg|lrd|lr|ema|epochs)([\d.]+)", token)
        if not m:
            raise SystemExit(f"unknown recipe token {token!r} in {name!r}")
        key, value = m.groups()
        if key in ("w", "g", "d"):
            for side in {"w": "gd", "g": "g", "d": "d"}[key]:
                model[f"{side}_features"] = int(value)
        elif key == "b":
            train["batch_size"] = int(value)
        elif key.startswith("lr"):
            for side in {"lr": "gd", "lrg": "g", "lrd": "d"}[key]:
                train[f"lr_{side}"] = float(value) * 1e-4
        elif key == "ema":
            train |= {"ema": True, "ema_decay": float("0." + value)}
        else:
            train["epochs"] = int(value)
    return model, train


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", default="default")
    p.add_argument("--steps", type=int, default=3200)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--num", type=int, default=2000, help="samples per evaluation")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seeds", default="0")
    p.add_argument("--fd", type=float, default=100.0, help="digits FD that counts as recognisable")
    p.add_argument("--json", help="append one JSON line per recipe and seed to this file")
    p.add_argument("--grids", type=Path, help="write each evaluation's first 64 samples here")
    return p.parse_args(argv)


def run_recipe(name: str, seed: int, args, data, evaluator) -> dict:
    model_kw, train_kw = parse_recipe(name)
    # the 28 px digits net; the fields parse_recipe leaves out take the values they always had
    # here (BatchNorm in D, one critic step, no augmentation), given, not left to the recipe
    model_kw = {"image_size": 28, "channels": 1, "d_norm": "batch"} | model_kw
    train_kw = {"n_critic": 1, "augment": ""} | train_kw
    config = RunConfig(
        model=ModelConfig(**model_kw),
        train=TrainConfig(
            **train_kw,
            steps=args.steps,
            seed=seed,
            log_every=args.eval_every,
            sample_every=10**9,
            checkpoint_every=10**9,
        ),
    ).validate()
    state = create_state(config, torch.device("cpu"))
    z = latents(args.num, config.model.latent_dim, seed=123)
    curve: list[dict] = []
    scoring = [0.0]
    start = time.perf_counter()

    def evaluate(st) -> dict:
        t0 = time.perf_counter()
        train_s = t0 - start - scoring[0]
        images = generate(st.sampler, z)
        scores = evaluator(images)
        if args.grids:
            args.grids.mkdir(parents=True, exist_ok=True)
            name_ = f"{name}-s{seed}-{st.step:05d}-fd{scores['digits_fd']:.0f}.png"
            save_png(args.grids / name_, make_grid(images[:64]))
        scoring[0] += time.perf_counter() - t0
        point = {
            "step": st.step,
            "train_s": round(train_s, 2),
            "fd": round(scores["digits_fd"], 1),
            "coverage": scores["digits_coverage"],
            "confident": round(scores["digits_confident"], 3),
        }
        curve.append(point)
        print(f"  {name} seed {seed}: {point}", flush=True)
        return scores

    loop(torch_engine, state, data, Hooks(evaluate=evaluate, eval_every=args.eval_every))
    reached = next((p for p in curve if p["fd"] <= args.fd and p["coverage"] >= 10), None)
    return {
        "recipe": name,
        "seed": seed,
        "threads": torch.get_num_threads(),
        "fd_threshold": args.fd,
        "reached_step": reached and reached["step"],
        "reached_s": reached and reached["train_s"],
        "final": curve[-1],
        "curve": curve,
    }


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{cpu_kind()}, {torch.get_num_threads()} threads", flush=True)
    data = load_digits()
    evaluator = Evaluator(data, names=("digits",))
    for name in args.recipes.split(","):
        for seed in map(int, args.seeds.split(",")):
            result = run_recipe(name, seed, args, data, evaluator)
            print(
                f"{name} seed {seed}: FD <= {args.fd} at step {result['reached_step']} "
                f"({result['reached_s']} s of training); final {result['final']}",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
