"""Training speed on CPU: our engine against the pytorch/examples reference on the identical 64 px
net, GFLOP/s from the layer shapes, the 28/32 px nets, the speed levers one by one, generation.

    .venv/bin/python bench/bench_train.py [--threads 1] [--rounds 5] [--steps 3] [--malloc tuned]
        [--sections compare,levers,sizes,generate,compile] [--batches 64,128]
        [--sizes-batches 64,128] [--device cuda] [--dry-run]
    .venv/bin/python bench/bench_train.py --malloc-ab 3 ...   # the allocator's own gain

Contestants of a section run in the same process, their rounds interleaved (A, B, A, B, ...), so
outside load hits them alike; img/s is the median over rounds, a ratio is the median of the
per-round ratios. --malloc applies to the whole process, so both sides of a ratio share it;
--malloc-ab runs child processes alternately with glibc's default and the tuned allocator.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

FOLDER = "/work/shared/datasets/cifar10_test"
PEAK_FP32 = 330.0  # GFLOP/s: 2 cores x 2 AVX-512 FMA units x 16 lanes x 2 x 2.6 GHz


def _parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, = cores)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (bench/gpu_check.sh)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="training steps per round")
    p.add_argument("--batches", default="64,128", help="batch sizes of compare and compile")
    p.add_argument("--sizes-batches", default="64,128", help="batch sizes of the sizes section")
    p.add_argument("--sections", default="compare,levers,sizes,generate")
    p.add_argument("--data", default=FOLDER, help="a folder of images (the reference's input)")
    p.add_argument("--quality-steps", type=int, default=600)
    p.add_argument("--quality-seeds", type=int, default=3)
    p.add_argument("--malloc", choices=("default", "tuned"), default="default")
    p.add_argument("--malloc-ab", type=int, default=0, metavar="PAIRS")
    p.add_argument("--json", help=argparse.SUPPRESS)  # a --malloc-ab child writes its results
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="run the CUDA-only contestants (CUDA graphs) on this device too, to prove the code "
        "path (bench/gpu_check.sh DRY_RUN=1); their numbers mean nothing",
    )
    return p.parse_args(argv)


ARGS = _parse_args()
if ARGS.malloc == "tuned":  # before torch allocates anything
    from dcgan.perf import tune_malloc

    assert tune_malloc(), "glibc's mallopt is not available here"

import numpy as np  # noqa: E402
import torch  # noqa: E402
from baseline_pytorch_examples import ExamplesTrainer  # noqa: E402
from torch import nn  # noqa: E402

from dcgan import torch_engine as T  # noqa: E402
from dcgan.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from dcgan.datasets import load_source  # noqa: E402
from dcgan.loop import Hooks, loop  # noqa: E402
from dcgan.models import build_models  # noqa: E402
from dcgan.perf import cpu_kind  # noqa: E402
from dcgan.sampling import Sampler, auto_batch_size, sample  # noqa: E402

# the paper's nets (D with BatchNorm), every recipe-owned field given: nothing left to the recipe
_NET = dict(latent_dim=100, g_features=64, d_features=64, d_norm="batch")
NET64 = ModelConfig(image_size=64, channels=3, **_NET)
NET32 = ModelConfig(image_size=32, channels=3, **_NET)
NET28 = ModelConfig(image_size=28, channels=1, **_NET)
# the paper's training settings, which these benchmarks were measured with (RunConfig's recipe
# would otherwise pick DiffAugment at 64 px, and batch 128 / two learning rates at 28 px)
PAPER_TRAIN = dict(epochs=20, lr_g=2e-4, lr_d=2e-4, n_critic=1, augment="")
NET28_DEFAULT = dataclasses.replace(NET28, g_features=32, d_features=32)  # dcgan train's 28 px
RESULTS: dict[str, float] = {}


# ---------------------------------------------------------------------------------------------
# FLOPs of one training step, from the layer shapes


def layer_macs(net: nn.Module, x: torch.Tensor) -> list[int]:
    """Multiply-accumulates of each conv/linear layer's forward pass, in order, for input x."""
    macs: list[int] = []

    def hook(m, inputs, out):
        if isinstance(m, nn.ConvTranspose2d):  # every input pixel meets the whole kernel
            macs.append(inputs[0].numel() * m.out_channels * m.weight[0, 0].numel())
        elif isinstance(m, nn.Conv2d):  # every output pixel does
            macs.append(out.numel() * m.weight[0].numel())
        elif isinstance(m, nn.Linear):
            macs.append(out.numel() * m.in_features)

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return macs


def step_flops(cfg: ModelConfig, batch: int, d_weight_grads_in_g_step: bool) -> float:
    """FLOPs (2 per MAC) of one GAN step: D forward + backward on the real and the fake batch
    (weight gradients; input gradients below the first layer), G forward, then D forward +
    input gradients through all layers (+ weight gradients when D is not frozen) and G's backward
    (weight gradients; input gradients below its first layer). BN, activations, losses and Adam
    are memory-bound and left out (under 1% of the FLOPs)."""
    G, D = build_models(cfg)
    z = torch.zeros(batch, cfg.latent_dim)
    g, d = layer_macs(G.eval(), z), layer_macs(D.eval(), G.eval()(z))
    d_train = sum(d) + sum(d) + sum(d[1:])  # forward, weight grads, input grads (not the image's)
    g_step = sum(d) + sum(d) + (sum(d) if d_weight_grads_in_g_step else 0)
    g_step += sum(g) + sum(g) + sum(g[1:])  # G: forward, weight grads, input grads (not z's)
    return 2.0 * (2 * d_train + g_step)


# ---------------------------------------------------------------------------------------------
# contestants: objects with run(steps); img/s = batch * steps / wall seconds


class Reference:
    """bench/baseline_pytorch_examples.py: JPEG folder, DataLoader (2 workers), Sigmoid+BCELoss;
    compute_only: its step over 8 batches decoded up front (no loader in the timed loop)."""

    def __init__(self, batch: int, image_size: int = 64, compute_only: bool = False):
        self.trainer = ExamplesTrainer(
            ARGS.data,
            batch,
            image_size,
            workers=2,
            device=ARGS.device,
            compute_only=8 if compute_only else 0,
        )
        self.flops = step_flops(NET64, batch, d_weight_grads_in_g_step=True)
        self.batch = batch

    def run(self, steps: int) -> None:
        self.trainer.run(steps)


class Engine:
    """Our engine as `dcgan train` drives it: `dcgan.loop.loop` over a prepared uint8 set (no
    decoding in the loop), the losses summed on device and synced every log_every steps. The
    feeder is made once, as in one `dcgan train` run: on a GPU it copies the whole set to the
    device, which a fresh `loop` call would redo in every timed round."""

    def __init__(self, data, cfg: ModelConfig, batch: int, tweak=None, **train):
        # a long run stopped by should_stop: a run's last step would also draw a sample grid
        # fp32 unless a contestant asks for bf16 (not auto, which is bf16 on AMX CPUs)
        train = {"precision": "fp32"} | PAPER_TRAIN | train
        train_cfg = TrainConfig(batch_size=batch, steps=10**9, **train)
        config = RunConfig(model=cfg, data=DataConfig(), train=train_cfg).validate()
        self.state = T.create_state(config, torch.device(ARGS.device))
        if tweak:
            tweak(self.state)
        self.data, self.batch = data, batch
        self.flops = step_flops(cfg, batch, d_weight_grads_in_g_step=False)
        feed = T.feeder(self.state, data)
        # torch_engine with its feeder made once (the loop calls feeder, train_step, generate)
        self.engine = SimpleNamespace(
            feeder=lambda state, data: feed, train_step=T.train_step, generate=T.generate
        )

    def run(self, steps: int) -> None:
        end = self.state.step + steps
        hooks = Hooks(should_stop=lambda: self.state.step >= end)
        loop(self.engine, self.state, self.data, hooks)


def _sync() -> None:
    if ARGS.device.startswith("cuda"):
        torch.cuda.synchronize()


def race(title: str, contestants: dict, rounds: int, steps: int, base: str | None = None) -> dict:
    """Interleaved rounds; prints median img/s, GFLOP/s, fraction of peak, ratio to `base`."""
    rates: dict[str, list[float]] = {k: [] for k in contestants}
    for c in contestants.values():
        c.run(2)  # warm-up: oneDNN primitives, DataLoader workers, compile
    for _ in range(rounds):
        for name, c in contestants.items():
            _sync()
            start = time.perf_counter()
            c.run(steps)
            _sync()
            rates[name].append(c.batch * steps / (time.perf_counter() - start))
    print(f"\n## {title}  (load {os.getloadavg()[0]:.1f})")
    print(f"{'':34s} {'img/s':>8s} {'GFLOP/s':>8s} {'peak':>6s} {'ratio':>6s}  rounds")
    for name, r in rates.items():
        med = statistics.median(r)
        c = contestants[name]
        gflops = med / c.batch * c.flops / 1e9
        peak = gflops / PEAK_FP32 if ARGS.device == "cpu" else float("nan")  # a CPU figure
        ratio = ""
        if base and name != base:
            ratio = statistics.median(a / b for a, b in zip(r, rates[base]))
            RESULTS[f"{title}|{name}|ratio"] = ratio
            ratio = f"{ratio:5.2f}x"
        RESULTS[f"{title}|{name}|img/s"] = med
        print(
            f"{name:34s} {med:8.1f} {gflops:8.1f} {peak:6.1%} {ratio:>6s}  "
            + " ".join(f"{x:.0f}" for x in r)
        )
    return rates


# ---------------------------------------------------------------------------------------------
# sections


def load(cfg: ModelConfig, cache: Path):
    source = "digits" if cfg.channels == 1 else ARGS.data
    return load_source(source, cfg.image_size, cfg.channels, cache)


def compare(cache: Path) -> None:
    data = load(NET64, cache)
    for batch in map(int, ARGS.batches.split(",")):
        flops = step_flops(NET64, batch, False) / batch / 1e9
        ref_flops = step_flops(NET64, batch, True) / batch / 1e9
        print(f"\nGFLOP per image: engine {flops:.3f}, reference {ref_flops:.3f}")
        race(
            f"64 px identical net, batch {batch}",
            {
                "reference (examples/dcgan)": Reference(batch),
                "reference, compute only": Reference(batch, compute_only=True),
                "engine fp32": Engine(data, NET64, batch, channels_last=False),
                "engine fp32 channels_last": Engine(data, NET64, batch, channels_last=True),
                "engine bf16 channels_last": Engine(
                    data, NET64, batch, channels_last=True, precision="bf16"
                ),
            },
            ARGS.rounds,
            ARGS.steps,
            base="reference (examples/dcgan)",
        )


def _no_freeze(state) -> None:
    # requires_grad_ as a no-op on this instance: the G step computes D's weight gradients too
    state.discriminator.requires_grad_ = lambda requires_grad=True: state.discriminator


def _adam(**kw):
    def tweak(state) -> None:
        cfg = state.config.train
        for name, module, lr in (
            ("opt_g", state.generator, cfg.lr_g),
            ("opt_d", state.discriminator, cfg.lr_d),
        ):
            opt = torch.optim.Adam(module.parameters(), lr, betas=(cfg.beta1, cfg.beta2), **kw)
            setattr(state, name, opt)

    return tweak


def _outer_layers_nchw(state) -> None:
    """channels_last per layer: the layers around the largest activations (G's last two
    transposed convolutions and what lies between, D's first convolution and its LeakyReLU) run
    NCHW, the rest channels_last; a format change at each border (a copy each way)."""

    def to(fmt):
        return lambda module, args: (args[0].contiguous(memory_format=fmt), *args[1:])

    G, D = state.generator.main, state.discriminator.main
    g_convs = [i for i, m in enumerate(G) if isinstance(m, nn.ConvTranspose2d)]
    d_convs = [i for i, m in enumerate(D) if isinstance(m, nn.Conv2d)]
    g_from, d_upto = g_convs[-2], d_convs[1]
    for m in list(G)[g_from:] + list(D)[:d_upto]:
        m.to(memory_format=torch.contiguous_format)
    G[g_from].register_forward_pre_hook(to(torch.contiguous_format))
    D[0].register_forward_pre_hook(to(torch.contiguous_format))
    D[d_upto].register_forward_pre_hook(to(torch.channels_last))


def levers(cache: Path) -> None:
    data = load(NET64, cache)
    batch = 64
    race(
        "levers, 64 px batch 64 (fp32 unless named)",
        {
            "default (NHWC, D frozen, Adam)": Engine(data, NET64, batch),
            "NCHW (channels_last off)": Engine(data, NET64, batch, channels_last=False),
            "NCHW around the largest activations": Engine(
                data, NET64, batch, tweak=_outer_layers_nchw
            ),
            "D not frozen in the G step": Engine(data, NET64, batch, tweak=_no_freeze),
            "Adam foreach=False": Engine(data, NET64, batch, tweak=_adam(foreach=False)),
            "Adam foreach=True": Engine(data, NET64, batch, tweak=_adam(foreach=True)),
            "Adam fused=True": Engine(data, NET64, batch, tweak=_adam(fused=True)),
            "mkldnn off": MkldnnOff(Engine(data, NET64, batch)),
            "bf16": Engine(data, NET64, batch, precision="bf16"),
        },
        ARGS.rounds,
        ARGS.steps,
        base="default (NHWC, D frozen, Adam)",
    )


def adam(cache: Path) -> None:
    data = load(NET64, cache)
    race(
        "Adam on CPU, 64 px batch 64",
        {
            "Adam default (CPU: for-loop)": Engine(data, NET64, 64),
            "Adam foreach=False": Engine(data, NET64, 64, tweak=_adam(foreach=False)),
            "Adam fused=True": Engine(data, NET64, 64, tweak=_adam(fused=True)),
        },
        ARGS.rounds,
        ARGS.steps,
        base="Adam default (CPU: for-loop)",
    )


class MkldnnOff:
    """torch.backends.mkldnn disabled around the steps: convolutions take ATen's own kernels."""

    def __init__(self, inner):
        self.inner, self.batch, self.flops = inner, inner.batch, inner.flops

    def run(self, steps: int) -> None:
        with torch.backends.mkldnn.flags(enabled=False):
            self.inner.run(steps)


def sizes(cache: Path) -> None:
    batches = map(int, ARGS.sizes_batches.split(","))
    for cfg, batch in ((cfg, b) for b in batches for cfg in (NET28, NET32)):
        data = load(cfg, cache)
        race(
            f"{cfg.image_size} px ({cfg.channels} ch, widths 64), batch {batch}",
            {
                "engine fp32": Engine(data, cfg, batch, channels_last=False),
                "engine fp32 channels_last": Engine(data, cfg, batch, channels_last=True),
                "engine bf16 channels_last": Engine(
                    data, cfg, batch, channels_last=True, precision="bf16"
                ),
            },
            ARGS.rounds,
            ARGS.steps * 2,
            base="engine fp32",
        )


def widths(cache: Path) -> None:
    """The 28 px digits net at the widths and batch sizes the time-to-quality recipes use."""
    data = load(NET28, cache)
    contestants = {}
    for width in (32, 48, 64):
        cfg = dataclasses.replace(NET28, g_features=width, d_features=width)
        for batch in (64, 128):
            contestants[f"width {width}, batch {batch}"] = Engine(data, cfg, batch)
    race("28 px digits net, fp32 default", contestants, ARGS.rounds, ARGS.steps * 4)


def _cuda_graphs(state) -> None:
    # torch.compile's "reduce-overhead" mode: inductor's kernels replayed as CUDA graphs, which
    # takes the per-kernel launch cost off the host (the small 28-64 px nets launch hundreds)
    state.generator.compile(mode="reduce-overhead")
    state.discriminator.compile(mode="reduce-overhead")


def compile_section(cache: Path) -> None:
    data = load(NET64, cache)
    for batch in map(int, ARGS.batches.split(",")):
        compiled = {"compiled channels_last": Engine(data, NET64, batch, compile=True)}
        if ARGS.device.startswith("cuda") or ARGS.dry_run:
            compiled["compiled + CUDA graphs"] = Engine(data, NET64, batch, tweak=_cuda_graphs)
        firsts = {}
        for name, engine in list(compiled.items()):
            start = time.perf_counter()
            try:
                engine.run(2)
            except Exception:  # a compiler failure must not cost the other contestants
                traceback.print_exc()
                print(f"\n{name}: FAILED at batch {batch} (traceback above); left out")
                del compiled[name]
                continue
            _sync()
            firsts[name] = time.perf_counter() - start
            print(f"\n{name}: first 2 steps at batch {batch} took {firsts[name]:.0f} s")
            RESULTS[f"{name} b{batch}|first 2 steps s"] = firsts[name]
        rates = race(
            f"torch.compile, 64 px batch {batch}",
            {"eager channels_last": Engine(data, NET64, batch), **compiled},
            ARGS.rounds,
            ARGS.steps,
            base="eager channels_last",
        )
        eager = statistics.median(rates["eager channels_last"])
        for name, first in firsts.items():
            comp = statistics.median(rates[name])
            if comp > eager:
                saved = batch / eager - batch / comp  # seconds saved per step
                print(f"{name} pays off after {first / saved:.0f} steps")


def generate_section(cache: Path) -> None:
    print(
        f"\n## generation, sampling.sample with the auto batch size (load {os.getloadavg()[0]:.1f})"
    )
    scale = 1 if ARGS.device == "cpu" else 16  # enough images to time a GPU
    nets = ((NET28_DEFAULT, 4096), (NET28, 4096), (NET32, 4096), (NET64, 1024))
    for cfg, n in ((cfg, n * scale) for cfg, n in nets):
        G, D = build_models(cfg)
        variants = {"NCHW": G, "channels_last": _cl_copy(G)}
        rates = {k: [] for k in variants}
        for _ in range(ARGS.rounds):
            for name, g in variants.items():
                device = torch.device(ARGS.device)
                config = RunConfig(model=cfg, train=TrainConfig(batch_size=64, **PAPER_TRAIN))
                s = Sampler(config, T, g.to(device).eval(), D, device, 0, Path("."))
                _sync()
                start = time.perf_counter()
                sample(s, n, seed=0)
                _sync()
                rates[name].append(n / (time.perf_counter() - start))
        bs = auto_batch_size(torch.device(ARGS.device), cfg.image_size)
        for name, r in rates.items():
            RESULTS[f"generate {cfg.image_size}w{cfg.g_features}|{name}"] = statistics.median(r)
            print(
                f"{cfg.image_size} px (width {cfg.g_features}), batch {bs}, {name:14s} "
                f"{statistics.median(r):8.0f} img/s  " + " ".join(f"{x:.0f}" for x in r)
            )


def _cl_copy(g: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(g).to(memory_format=torch.channels_last)


def quality(cache: Path) -> None:
    """fp32 vs bf16 (channels_last both) at equal steps on the digits: the digits metric of 2000
    samples against the bundled set, for a few seeds (a GAN's spread between seeds is large)."""
    from dcgan.metrics import compute_metrics

    data = load(NET28, cache)
    steps = ARGS.quality_steps
    print(f"\n## quality: 28 px digits, batch 64, {steps} steps, 2000 samples, digits metric")
    for seed in range(ARGS.quality_seeds):
        for precision in ("fp32", "bf16"):
            e = Engine(data, NET28, 64, channels_last=True, precision=precision, seed=seed)
            start = time.perf_counter()
            e.run(steps)
            took = time.perf_counter() - start
            z = torch.randn(2000, NET28.latent_dim, generator=torch.Generator().manual_seed(7))
            fake = T.generate(e.state.generator, z.to(e.state.device))
            m = compute_metrics(fake, data, names=("digits",))
            for k, v in m.items():
                RESULTS[f"quality|{precision}|seed {seed}|{k}"] = v
            shown = "  ".join(f"{k} {v:.4g}" for k, v in sorted(m.items()))
            print(f"seed {seed} {precision}: {shown}  ({took:.0f} s)")


SECTIONS = {
    "quality": quality,
    "compare": compare,
    "levers": levers,
    "adam": adam,
    "sizes": sizes,
    "generate": generate_section,
    "compile": compile_section,
    "widths": widths,
}


def malloc_ab() -> None:
    """Children alternately under glibc's default and the tuned allocator; medians of each key."""
    given = sys.argv[1:]
    argv = [
        a
        for i, a in enumerate(given)
        if not a.startswith("--malloc-ab") and not (i and given[i - 1] == "--malloc-ab")
    ]
    runs: dict[str, list[dict]] = {"default": [], "tuned": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(ARGS.malloc_ab):
            for mode in runs:
                out = Path(tmp, f"{mode}{k}.json")
                cmd = [sys.executable, __file__, *argv, "--malloc", mode, "--json", str(out)]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                runs[mode].append(json.loads(out.read_text()))
    print(f"\n## allocator: glibc default vs tuned, {ARGS.malloc_ab} process pairs")
    for key in runs["default"][0]:
        d, t = (statistics.median(r[key] for r in runs[m]) for m in runs)
        gain = statistics.median(b[key] / a[key] for a, b in zip(runs["default"], runs["tuned"]))
        print(f"{key:70s} default {d:8.2f}  tuned {t:8.2f}  tuned/default {gain:5.2f}x")


def _device_name() -> str:
    if ARGS.device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(ARGS.device))
    return ARGS.device


def main() -> int:
    if ARGS.threads:
        torch.set_num_threads(ARGS.threads)
    if ARGS.malloc_ab:
        malloc_ab()
        return 0
    print(
        f"{cpu_kind()}, device "
        f"{_device_name()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, malloc {ARGS.malloc}, "
        f"{ARGS.rounds} rounds x {ARGS.steps} steps, load {os.getloadavg()}"
    )
    np.random.seed(0)
    with tempfile.TemporaryDirectory(prefix="dcgan-bench-") as cache:
        for name in ARGS.sections.split(","):
            SECTIONS[name](Path(cache))
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
