"""Run directories written directly in the checkpoint format, with untrained nets whose weights
are scaled up so the images spread over [-1, 1] (a freshly initialised G draws grey, every
pixel near 127.5, where a rounding difference of 1e-7 flips a uint8 value; that would test
nothing). No training: export and sampling tests then take a fraction of a second each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dcgan import checkpoint as ckpt
from dcgan import files, rundir
from dcgan.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from dcgan.models import build_models


def spread_weights(module: torch.nn.Module, seed: int) -> None:
    """Random weights at a scale that keeps activations O(1), and BatchNorm running statistics
    that are not the identity (so an export that dropped them would show)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:  # Linear (out, in), ConvTranspose2d (in, out, k, k), Conv2d (out, in..)
                fan_in = p.shape[1] if p.dim() == 2 else p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g) * 0.6 / fan_in**0.5)
            else:  # BatchNorm scale around 1, shifts around 0
                p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if "weight" in name else 0))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def model_config(kind: str = "dcgan", size: int = 28, channels: int = 1) -> ModelConfig:
    return ModelConfig(
        kind=kind,
        image_size=size,
        channels=channels,
        latent_dim=8,
        g_features=4,
        d_features=4,
        d_norm="batch",
    )


def make_run(
    root: Path,
    model: ModelConfig | None = None,
    ema: bool = True,
    step: int = 7,
    name: str = "run",
) -> Path:
    """RUN/config.json and RUN/checkpoints/step_N.safetensors with G, G_ema (if `ema`) and D."""
    model = model or model_config()
    config = RunConfig(model=model, data=DataConfig(), train=TrainConfig(steps=step, ema=ema))
    g, d = build_models(model)
    spread_weights(g, 1)
    spread_weights(d, 2)
    modules = {"generator": g, "discriminator": d}
    if ema:
        g_ema, _ = build_models(model)
        spread_weights(g_ema, 3)
        modules["generator_ema"] = g_ema
    arrays = {
        f"{prefix}.{k}": v.detach().numpy().copy()
        for prefix, m in modules.items()
        for k, v in m.state_dict().items()
    }
    run = Path(root) / name
    run.mkdir(parents=True)
    files.write_json(run / rundir.CONFIG_FILE, config.to_dict())
    ckpt.write_checkpoint(
        rundir.checkpoint_path(run, step), arrays, {"config": config.to_dict(), "step": step}
    )
    return run


def torch_generator(run: Path, prefix: str = "generator_ema") -> torch.nn.Module:
    """The run's generator as a plain NCHW float32 module in eval mode."""
    arrays, meta = ckpt.read_checkpoint(rundir.find_checkpoint(run))
    g, _ = build_models(RunConfig.from_dict(meta["config"]).model)
    g.load_state_dict({k: torch.from_numpy(v) for k, v in ckpt.subset(arrays, prefix).items()})
    return g.eval()


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8 as `dcgan generate` rounds them."""
    return np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8)
