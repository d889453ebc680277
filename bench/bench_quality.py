"""Training recipes side by side: the same budget on the same data, one after another.

    python bench/bench_quality.py --data digits --recipe today --recipe hinge+sn+da \\
        [--steps 1500 | --seconds 120] [--eval-every 250] [--num 2000] [--out bench/quality]
        [--threads N|auto] [--busy N]

--threads auto trains under `dcgan train`'s thread governor; --busy N runs N busy processes
(`python -c "while True: pass"`) throughout, for the time to quality under load.

--data: digits (28 px), icons=FOLDER (64 px; make one with bench/make_icons.py), cifar32,
cifar64 (the CIFAR-10 JPEGs of /work/shared/datasets/cifar10_test, or cifar32=FOLDER).
--recipe: a preset name (see PRESETS) or "+"-joined tokens over the net's defaults
(`config.recipe_defaults`, bce, Adam(lr, beta 0.5, 0.999)); the token paper starts from the
paper's recipe instead. Presets: default (what `dcgan train` uses), paper (`--recipe paper`),
today (the 28 px default before issue 12: width 32, batch 64, lr 6e-4 for both), and others.
  bce|lsgan|hinge|wgan      the loss (wgan: wgan-gp, 5 critic steps)
  sn                        spectral norm on every D weight
  dnone|dlayer              D without BatchNorm / with GroupNorm(1)
  da | da=color/translation the DiffAugment policy (default color,translation,cutout)
  r1=G                      R1 on the reals, weight G/2
  lr=X lrg=X lrd=X          learning rates in units of 1e-4
  beta=B1/B2                Adam's betas
  w=N g=N d=N b=N           widths, batch size
  ema=D                     an EMA generator (decay D), sampled after recalibrate_bn
                            (bench/bn_recalibration.py)
  fp32 | bf16               the precision (bf16: autocast of the convolutions); without
                            either, the library's default --precision auto: bf16 on CPUs
                            with AMX, fp32 elsewhere
  lin                       learning rates decayed linearly to 0 over the run
  tail=F                    constant, then decayed linearly to 0 over the run's last share F

Digits are scored with the digits metric (FD, confident share, classes) and the steps and
training seconds to the first evaluation at FD <= 100 and <= 50; the other sets with SWD against
the real images (with two references: uniform noise, and a second real subset). Grids of the
first 64 eval samples go to OUT/grids/. Training seconds exclude scoring.

Every lever is a config field of the library except the learning-rate schedules (lin, tail),
which the bench applies before each `torch_engine.train_step`; the rest is the library:
`torch_engine.create_state`, `dcgan.loop.loop` (the loop `dcgan.train` runs, with its step
inputs drawn from (seed, step, critic)), models and losses.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bn_recalibration import recalibrate_bn  # noqa: E402 (bench/ is the script's folder)

from dcgan import draw, torch_engine  # noqa: E402
from dcgan.config import (  # noqa: E402
    DIFF_AUGMENT,
    ModelConfig,
    RunConfig,
    TrainConfig,
    recipe_defaults,
)
from dcgan.datasets import load_digits, load_source  # noqa: E402
from dcgan.images import make_grid, save_png, upscale_nearest  # noqa: E402
from dcgan.loop import Hooks, loop, total_steps  # noqa: E402
from dcgan.losses import LOSSES  # noqa: E402
from dcgan.metrics import Evaluator  # noqa: E402
from dcgan.perf import ThreadGovernor, cpu_kind  # noqa: E402
from dcgan.torch_engine import create_state, generate  # noqa: E402

CIFAR = "/work/shared/datasets/cifar10_test"
PRESETS = {
    "default": "bce",  # the current default (config.recipe_defaults "default")
    "today": "bce+b=64+lr=6",  # the 28 px default before issue 12: batch 64, lr 6e-4 for both
    "paper": "paper",  # Radford et al.'s settings (widths 64, lr 2e-4, batch 64)
    "hinge-sn": "hinge+sn+dnone+beta=0.5/0.999",
    "hinge-sn-da": "hinge+sn+dnone+da",
    "bce-da": "bce+da",
    "bce-sn-da": "bce+sn+dnone+da",
}


@dataclass(frozen=True)
class Recipe:
    name: str
    model: dict
    train: dict
    tail: float = 0.0  # decay the learning rates linearly to 0 over this last share of the run


def parse_recipe(name: str, kind: str, image_size: int) -> Recipe:
    model, train = recipe_defaults("default", kind, image_size)
    train["recipe"] = "default"
    extra: dict = {}
    for token in PRESETS.get(name, name).split("+"):
        key, _, value = token.partition("=")
        if key == "default":
            continue
        if key == "paper":  # start again from the paper's recipe (config.recipe_defaults)
            model, train = recipe_defaults("paper", kind, image_size)
            train["recipe"] = "paper"
            continue
        if key in LOSSES or key == "wgan":
            train["loss"] = "wgan-gp" if key == "wgan" else key
            if key == "wgan":
                train["n_critic"] = 5
        elif key == "sn":
            model["spectral_norm"] = True
        elif key in ("dnone", "dlayer"):
            model["d_norm"] = key[1:]
        elif key == "da":
            train["augment"] = value.replace("/", ",") if value else DIFF_AUGMENT
        elif key == "r1":
            train["r1_gamma"] = float(value)
        elif key in ("lr", "lrg", "lrd"):
            for side in {"lr": "gd", "lrg": "g", "lrd": "d"}[key]:
                train[f"lr_{side}"] = float(value) * 1e-4
        elif key == "beta":
            b1, b2 = value.split("/")
            train |= {"beta1": float(b1), "beta2": float(b2)}
        elif key in ("w", "g", "d"):
            for side in {"w": "gd", "g": "g", "d": "d"}[key]:
                model[f"{side}_features"] = int(value)
        elif key == "b":
            train["batch_size"] = int(value)
        elif key == "ema":
            train |= {"ema": True, "ema_decay": float(value)}
        elif key in ("fp32", "bf16"):
            train["precision"] = key
        elif key == "lin":  # the whole run: tail=1
            extra["tail"] = 1.0
        elif key == "tail":
            extra["tail"] = float(value)
        else:
            raise SystemExit(f"unknown recipe token {token!r} in {name!r}")
    return Recipe(name, model, train, **extra)


def set_learning_rates(state, recipe: Recipe, total: int) -> None:
    """The recipe's schedule: the configured rates, scaled down linearly to 0 over the run
    (lin) or over its last share (tail=F); nothing without one."""
    if not recipe.tail:
        return
    cfg = state.config.train
    scale = min(1.0, (total - state.step) / (recipe.tail * total))
    for opt, lr in ((state.opt_g, cfg.lr_g), (state.opt_d, cfg.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr * scale


class RecipeEngine:
    """The torch engine with the recipe's learning-rate schedule before each step (the loop
    calls feeder, train_step and generate)."""

    name = "torch"

    def __init__(self, recipe: Recipe, total: int):
        self.recipe, self.total = recipe, total

    def feeder(self, state, data):
        return torch_engine.feeder(state, data)

    def train_step(self, state, inputs):
        set_learning_rates(state, self.recipe, self.total)
        return torch_engine.train_step(state, inputs)

    def generate(self, generator, z, batch_size=256, labels=None):  # the loop's sample grids
        return np.zeros((0, 1, 1, 1), np.uint8)  # the bench saves its own grids


def load_data(spec: str, cache_dir: Path):
    name, _, path = spec.partition("=")
    if name == "digits":
        return name, load_digits(28, 1)
    if name == "icons":
        if not path:
            raise SystemExit("--data icons=FOLDER (make one with bench/make_icons.py)")
        return name, load_source(path, 64, 3, cache_dir)
    if name in ("cifar32", "cifar64"):
        return name, load_source(path or CIFAR, int(name[5:]), 3, cache_dir)
    raise SystemExit(f"unknown --data {spec!r}")


def references(data, evaluator, num: int) -> dict:
    """SWD of uniform noise and of a second real subset, the ceiling and the floor."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (num, *data.images.shape[1:]), dtype=np.uint8)
    other = data.images[rng.permutation(len(data))[:num]]
    return {
        "swd_noise": round(evaluator(noise)["swd"], 2),
        "swd_real": round(evaluator(other)["swd"], 2),
    }


def run(dataset: str, data, recipe: Recipe, args, evaluator) -> dict:
    size, channels = data.images.shape[-1], data.images.shape[1]
    train_kw = dict(recipe.train)
    train_kw |= dict(steps=args.steps, seed=args.seed, log_every=10**9)
    train_kw |= dict(sample_every=10**9, checkpoint_every=10**9)
    model = ModelConfig(image_size=size, channels=channels, **recipe.model)
    config = RunConfig(model=model, train=TrainConfig(**train_kw)).validate()
    state = create_state(config, torch.device("cpu"))
    z = torch.from_numpy(draw.latents(args.num, model.latent_dim, args.seed, draw.EVAL))
    curve: list[dict] = []
    scoring = [0.0]
    started = time.perf_counter()

    def train_seconds() -> float:
        return time.perf_counter() - started - scoring[0]

    def evaluate(st) -> dict:
        t0 = time.perf_counter()
        sampler = st.generator
        if st.generator_ema is not None:
            sampler = recalibrate_bn(
                copy.deepcopy(st.generator_ema), model.latent_dim, 4, 256, seed=args.seed
            )
        fake = generate(sampler, z)
        m = evaluator(fake)
        point = {"step": st.step, "train_s": round(t0 - started - scoring[0], 1)}
        if dataset == "digits":
            point |= {"fd": round(m["digits_fd"], 1), "confident": round(m["digits_confident"], 3)}
            point["classes"] = m["digits_coverage"]
        else:
            point["swd"] = round(m["swd"], 2)
        grid = make_grid(fake[:64])
        grid = upscale_nearest(grid, 2) if size <= 32 else grid
        save_png(args.out / "grids" / f"{dataset}_{_slug(recipe.name)}_{st.step:05d}.png", grid)
        curve.append(point)
        print(f"  {dataset} {recipe.name}: {point}", flush=True)
        scoring[0] += time.perf_counter() - t0
        return m

    def should_stop() -> bool:
        return args.seconds is not None and train_seconds() > args.seconds

    governor = None
    if args.threads == "auto":  # what `dcgan train` does on a CPU by default
        governor = ThreadGovernor(torch_engine.cpu_threads(), torch_engine.cpu_threads)
    hooks = Hooks(
        evaluate=evaluate, eval_every=args.eval_every, should_stop=should_stop, threads=governor
    )
    engine = RecipeEngine(recipe, total_steps(config, len(data)))
    status = loop(engine, state, data, hooks)
    if status == "diverged":
        print(f"  {dataset} {recipe.name}: diverged at step {state.step}", flush=True)
    if not curve or curve[-1]["step"] != state.step:
        evaluate(state)
    result = {"dataset": dataset, "recipe": recipe.name, "seed": args.seed, "steps": state.step}
    result["train_s"] = round(train_seconds(), 1)
    result["final"] = curve[-1]
    if dataset == "digits":
        for fd in (100, 50, 20):
            hit = next((p for p in curve if p["fd"] <= fd and p["classes"] >= 10), None)
            result[f"to_fd{fd}"] = hit and {"step": hit["step"], "train_s": hit["train_s"]}
    result["curve"] = curve
    return result


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", action="append", default=None)
    p.add_argument("--recipe", action="append", default=None)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seconds", type=float, help="stop each recipe after this much training")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--num", type=int, default=2000, help="samples per evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", help="a torch thread count, or auto: dcgan train's governor")
    p.add_argument("--busy", type=int, default=0, help="busy processes running meanwhile")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "quality")
    p.add_argument("--cache-dir", type=Path)
    args = p.parse_args(argv)
    if args.threads and args.threads != "auto":
        torch.set_num_threads(int(args.threads))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        return run_all(args)
    finally:
        for hog in hogs:
            hog.kill()


def run_all(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{cpu_kind()}, threads {args.threads}, busy {args.busy}", flush=True)
    for spec in args.data or ["digits"]:
        dataset, data = load_data(spec, args.cache_dir)
        names = ("digits",) if dataset == "digits" else ("swd",)
        evaluator = Evaluator(data, names=names, cache_dir=args.cache_dir)
        refs = {} if dataset == "digits" else references(data, evaluator, args.num)
        if refs:
            print(f"{dataset}: {len(data)} images, references {refs}", flush=True)
        for name in args.recipe or ["today"]:
            size = data.images.shape[-1]
            recipe = parse_recipe(name, "dcgan", size)
            result = run(dataset, data, recipe, args, evaluator) | refs
            summary = {k: v for k, v in result.items() if k != "curve"}
            print(json.dumps(summary), flush=True)
            with open(args.out / "results.jsonl", "a") as f:
                f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
