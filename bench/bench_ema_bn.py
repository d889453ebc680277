"""Which BatchNorm statistics the EMA generator should sample with, by the digits metric.

    python bench/bench_ema_bn.py [--steps 1500] [--decay 0.999] [--seed 0] [--num 2000]
        [--loss bce] [--json out.jsonl] [--grids DIR]

Trains the default 28 px digits recipe with an EMA generator (`torch_engine.create_state` +
`runner.loop`), keeping alongside it a second EMA whose BN buffers are averaged like the weights
(`torch_engine.update_ema`, same decay schedule), then scores from the same eval latents:
raw G (its running statistics), raw G recalibrated, the trainer's EMA ("ema_copied_stats": it
copied the raw statistics when this benchmark was written; update_ema now averages them, so it
matches "ema_averaged_buffers"), EMA with averaged buffers, and EMA recalibrated
(`bn_recalibration.recalibrate_bn`).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from bn_recalibration import recalibrate_bn  # noqa: E402 (bench/ is the script's folder)

from dcgan import draw, torch_engine  # noqa: E402
from dcgan.config import ModelConfig, RunConfig, TrainConfig, size_defaults  # noqa: E402
from dcgan.datasets import load_digits  # noqa: E402
from dcgan.images import make_grid, save_png  # noqa: E402
from dcgan.loop import Hooks, ema_decay, loop  # noqa: E402
from dcgan.metrics import Evaluator  # noqa: E402
from dcgan.torch_engine import create_state, generate, update_ema  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--decay", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num", type=int, default=2000)
    p.add_argument("--loss", default="bce")
    p.add_argument("--recal-batches", type=int, default=8)
    p.add_argument("--recal-batch-size", type=int, default=256)
    p.add_argument("--threads", type=int)
    p.add_argument("--json")
    p.add_argument("--grids", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model_kw, train_kw = size_defaults("dcgan", 28)
    config = RunConfig(
        model=ModelConfig(**model_kw),
        train=TrainConfig(
            **train_kw,
            loss=args.loss,
            steps=args.steps,
            seed=args.seed,
            ema=True,
            ema_decay=args.decay,
            log_every=10**9,
            sample_every=10**9,
            checkpoint_every=10**9,
        ),
    ).validate()
    data = load_digits()
    evaluator = Evaluator(data, names=("digits",))
    state = create_state(config, torch.device("cpu"))
    ema_avg = copy.deepcopy(state.generator_ema)

    def on_progress(step: int) -> None:  # after train_step's own update_ema for step - 1
        update_ema(ema_avg, state.generator, ema_decay(step - 1, args.decay))

    started = time.perf_counter()
    loop(torch_engine, state, data, Hooks(on_progress=on_progress))
    train_s = time.perf_counter() - started

    dim = config.model.latent_dim
    recal = dict(
        latent_dim=dim, n_batches=args.recal_batches, batch_size=args.recal_batch_size, seed=1
    )
    variants = {
        "raw": state.generator,
        "raw_recalibrated": recalibrate_bn(copy.deepcopy(state.generator), **recal),
        "ema_copied_stats": state.generator_ema,
        "ema_averaged_buffers": ema_avg,
        "ema_recalibrated": recalibrate_bn(copy.deepcopy(state.generator_ema), **recal),
    }
    z = torch.from_numpy(draw.latents(args.num, dim, args.seed, draw.EVAL))
    results = {"steps": args.steps, "decay": args.decay, "seed": args.seed, "loss": args.loss}
    results["train_s"] = round(train_s, 1)
    for name, g in variants.items():
        images = generate(g, z)
        m = evaluator(images)
        results[name] = {
            "fd": round(m["digits_fd"], 2),
            "confident": round(m["digits_confident"], 3),
            "classes": m["digits_coverage"],
        }
        print(f"{name:22s} {results[name]}", flush=True)
        if args.grids:
            save_png(args.grids / f"ema_bn_{args.steps}_{name}.png", make_grid(images[:64]))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
