"""The torch engine's train state as a checkpoint's named arrays and JSON metadata, and back
(the layout `dcgan.numpy_engine.serialize` reads and writes too, so each engine resumes the
other's runs)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from .errors import CheckpointError


def state_to_arrays(state) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Flatten the train state into named arrays and JSON metadata (the checkpoint format)."""
    arrays: dict[str, np.ndarray] = {}
    modules = {"generator": state.generator, "discriminator": state.discriminator}
    if state.generator_ema is not None:
        modules["generator_ema"] = state.generator_ema
    for prefix, module in modules.items():
        for key, t in module.state_dict().items():
            arrays[f"{prefix}.{key}"] = t.detach().cpu().numpy()
    optimizers = {}
    for prefix, opt, module in (
        ("opt_g", state.opt_g, state.generator),
        ("opt_d", state.opt_d, state.discriminator),
    ):
        names = [n for n, _ in module.named_parameters()]
        sd = opt.state_dict()
        steps = {}
        for index, slots in sd["state"].items():
            for slot, t in slots.items():
                if slot == "step":
                    steps[names[index]] = float(t)
                else:
                    arrays[f"{prefix}.{names[index]}.{slot}"] = t.detach().cpu().numpy()
        optimizers[prefix] = {"param_groups": sd["param_groups"], "steps": steps}
    meta = {
        "step": state.step,
        "elapsed": state.elapsed,
        "config": state.config.to_dict(),
        "optimizers": optimizers,
        "world_size": state.group.world,
        "extra": state.extra,
    }
    return arrays, meta


def restore_state(state, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Load a checkpoint's arrays and meta into a state built from the same config."""
    modules = {"generator": state.generator, "discriminator": state.discriminator}
    if state.generator_ema is not None:
        modules["generator_ema"] = state.generator_ema
    try:
        for prefix, module in modules.items():
            sd = {k: torch.from_numpy(v.copy()) for k, v in ckpt.subset(arrays, prefix).items()}
            module.load_state_dict(sd)
        for prefix, opt, module in (
            ("opt_g", state.opt_g, state.generator),
            ("opt_d", state.opt_d, state.discriminator),
        ):
            saved = meta["optimizers"][prefix]
            opt_state = {}
            for index, (name, _) in enumerate(module.named_parameters()):
                if name not in saved["steps"]:
                    continue
                slots = {"step": torch.tensor(saved["steps"][name], dtype=torch.float32)}
                for slot in ("exp_avg", "exp_avg_sq"):
                    slots[slot] = torch.from_numpy(arrays[f"{prefix}.{name}.{slot}"].copy())
                opt_state[index] = slots
            groups = [
                {**g, "betas": tuple(g["betas"])} for g in saved["param_groups"]
            ]  # JSON made it a list
            opt.load_state_dict({"state": opt_state, "param_groups": groups})
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint does not match this model ({str(e).splitlines()[0]})"
        ) from None
    # checkpoints of earlier versions also hold "rng.*" arrays and meta["rng"]: training draws
    # no longer come from a generator state, so they are ignored
    state.step = int(meta["step"])
    state.elapsed = float(meta.get("elapsed", 0.0))
    state.extra = dict(meta.get("extra", {}))
