"""Generation speed of an exported ONNX generator in onnxruntime (CPU) against `dcgan generate`'s
torch path, and the sizes of the export files, at 28 px and 64 px.

    .venv/bin/python bench/bench_export.py [--threads 2] [--rounds 5] [--sizes 28,64]

The nets are the defaults: 28 px gray, latent 100, g_features 32 (the digits default); 64 px RGB,
latent 100, g_features 64 (the paper's). Freshly initialised weights: speed does not depend on
training. Both sides turn z into uint8 (N, C, H, W) at the same batch (`auto_batch_size`: 512 at
28 px, 128 at 64 px on CPU) with the same thread count; rounds are interleaved, so load from
other processes hits both alike. img/s is the median over rounds, the ratio the median of the
per-round ratios. Sizes: the full training checkpoint (G, G_ema, D and both Adam moments, as
training writes it), the generator folder's model.safetensors, the ONNX and TorchScript files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--sizes", default="28,64")
    return p.parse_args(argv)


def _run_dir(root: Path, size: int) -> Path:
    """A run directory with a checkpoint as training writes it (moments zero: same bytes)."""
    import torch

    from dcgan import checkpoint as ckpt
    from dcgan import files, rundir
    from dcgan.config import ModelConfig, RunConfig, TrainConfig
    from dcgan.models import build_models

    torch.manual_seed(0)
    width = 32 if size == 28 else 64
    model = ModelConfig(
        image_size=size,
        channels=1 if size == 28 else 3,
        g_features=width,
        d_features=width,
        d_norm="batch",
    )
    # the paper's training settings, every recipe-owned field given (as this bench always wrote)
    train = TrainConfig(
        batch_size=64, epochs=20, lr_g=2e-4, lr_d=2e-4, n_critic=1, augment="", ema=True
    )
    config = RunConfig(model=model, train=train)
    g, d = build_models(model)
    arrays = {}
    for prefix, module in (("generator", g), ("generator_ema", g), ("discriminator", d)):
        arrays |= {f"{prefix}.{k}": v.numpy().copy() for k, v in module.state_dict().items()}
    for prefix, module in (("opt_g", g), ("opt_d", d)):
        for name, p in module.named_parameters():
            for slot in ("exp_avg", "exp_avg_sq"):
                arrays[f"{prefix}.{name}.{slot}"] = np.zeros(p.shape, np.float32)
    run = root / f"r{size}"
    run.mkdir()
    files.write_json(run / "config.json", config.to_dict())
    ckpt.write_checkpoint(
        rundir.checkpoint_path(run, 1), arrays, {"config": config.to_dict(), "step": 1}
    )
    return run


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def main(argv=None) -> None:
    args = _args(argv)
    import onnxruntime as ort
    import torch

    from dcgan.perf import cpu_kind

    print(f"{cpu_kind()}, {args.threads} threads", flush=True)
    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads")
    print(
        "| net | images | dcgan generate (torch) img/s | onnxruntime img/s | ratio | "
        "checkpoint MB | model.safetensors MB | .onnx MB | .torchscript.pt MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for size in map(int, args.sizes.split(",")):
            print(_measure(Path(tmp), size, args.rounds, opts), flush=True)


def _measure(root: Path, size: int, rounds: int, opts) -> str:
    """One table row: both engines on the same latents, interleaved round by round."""
    import onnxruntime as ort
    import torch

    from dcgan import draw, export, rundir, sampling

    run = _run_dir(root, size)
    folder = export.write_generator(run)
    onnx_file = export.export(run, "onnx")
    ts_file = export.export(run, "torchscript")
    sampler = sampling.load_sampler(run, torch.device("cpu"), discriminator=False)
    session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
    batch = sampling.auto_batch_size(torch.device("cpu"), size)
    n = batch * (4 if size == 28 else 2)
    z = draw.latents(n, 100, seed=0)

    def with_torch():
        return sampling.from_latents(sampler, z, batch)  # what `dcgan generate` runs

    def with_onnxruntime():
        x = np.concatenate(
            [session.run(None, {"z": z[i : i + batch]})[0] for i in range(0, n, batch)]
        )
        return np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8)

    a, b = with_torch(), with_onnxruntime()  # warm-up, and the two agree
    assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1
    speeds = {"torch": [], "onnx": []}
    for _ in range(rounds):
        for name, fn in (("torch", with_torch), ("onnx", with_onnxruntime)):
            t = time.perf_counter()
            fn()
            speeds[name].append(n / (time.perf_counter() - t))
    ratio = statistics.median(o / t for o, t in zip(speeds["onnx"], speeds["torch"]))
    width = 32 if size == 28 else 64
    return (
        f"| {size} px, width {width} | {n} | {statistics.median(speeds['torch']):.0f} | "
        f"{statistics.median(speeds['onnx']):.0f} | {ratio:.2f}x | "
        f"{_mb(rundir.find_checkpoint(run)):.2f} | {_mb(folder / 'model.safetensors'):.2f} | "
        f"{_mb(onnx_file):.2f} | {_mb(ts_file):.2f} |"
    )


if __name__ == "__main__":
    main()
