"""Map NumPy-engine models and Adam states to and from the checkpoint's named arrays and metadata.

Names follow `dcgan.checkpoint`: "generator.<state-dict key>", "opt_g.<param name>.exp_avg" and
".exp_avg_sq"; the optimiser's hyperparameters and step counts go in the JSON metadata under
"optimizers" in the shape the torch engine writes (param_groups + per-parameter steps), so either
engine can resume the other's checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checkpoint import subset
from ..errors import CheckpointError
from .backend import array_module, to_numpy
from .models import Model
from .optim import Adam


def model_to_arrays(prefix: str, model: Model) -> dict[str, np.ndarray]:
    """{"<prefix>.<state-dict key>": host array}; int64 num_batches_tracked as torch has it."""
    return {f"{prefix}.{k}": np.array(to_numpy(v)) for k, v in model.state_dict().items()}


def model_from_arrays(model: Model, arrays: dict[str, np.ndarray], prefix: str) -> None:
    """Load the arrays under `prefix.` into `model` (KeyError/ValueError if they do not match)."""
    model.load_state_dict(subset(arrays, prefix))


def optimizer_to_arrays(prefix: str, opt: Adam) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays "<prefix>.<name>.exp_avg|exp_avg_sq", metadata entry for meta["optimizers"])."""
    arrays = {}
    for name, slots in opt.state.items():
        for slot in ("exp_avg", "exp_avg_sq"):
            arrays[f"{prefix}.{name}.{slot}"] = np.array(to_numpy(slots[slot]))
    group = {
        "params": list(range(len(opt.params))),
        "lr": opt.lr,
        "betas": [opt.beta1, opt.beta2],
        "eps": opt.eps,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
    }
    # torch has no state for a parameter before its first step; mirror that
    steps = {name: float(opt.step_count) for name in opt.params} if opt.step_count else {}
    return arrays, {"param_groups": [group], "steps": steps}


def optimizer_from_arrays(
    opt: Adam, arrays: dict[str, np.ndarray], entry: dict[str, Any], prefix: str
) -> None:
    """Restore moments, step count and hyperparameters written by either engine."""
    group = entry["param_groups"][0]
    if group.get("weight_decay", 0) or group.get("amsgrad", False):
        raise ValueError("the numpy engine's Adam has no weight decay or amsgrad")
    steps = {int(v) for v in entry["steps"].values()}
    if len(steps) > 1:
        raise ValueError(f"parameters of {prefix} have different Adam step counts {sorted(steps)}")
    opt.lr, opt.eps = float(group["lr"]), float(group["eps"])
    opt.beta1, opt.beta2 = (float(b) for b in group["betas"])
    opt.step_count = steps.pop() if steps else 0
    xp = array_module(next(iter(opt.params.values()), np.zeros(0)))
    for name, slots in opt.state.items():
        for slot in ("exp_avg", "exp_avg_sq"):
            key = f"{prefix}.{name}.{slot}"
            if opt.step_count == 0 and key not in arrays:
                slots[slot][...] = 0
                continue
            value = xp.asarray(arrays[key])
            if value.shape != slots[slot].shape:
                raise ValueError(f"{key}: shape {value.shape} does not match {slots[slot].shape}")
            slots[slot][...] = value


# ---------------------------------------------------------------------------------------------
# the whole train state (the layout of dcgan.torch_engine.state_to_arrays)


def state_to_arrays(state) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A numpy-engine TrainState as the checkpoint's named arrays and JSON metadata (no RNG
    state: the runner draws every random number from (seed, step, critic))."""
    arrays = {
        **model_to_arrays("generator", state.generator),
        **model_to_arrays("discriminator", state.discriminator),
    }
    if state.generator_ema is not None:
        arrays |= model_to_arrays("generator_ema", state.generator_ema)
    optimizers = {}
    for prefix, opt in (("opt_g", state.opt_g), ("opt_d", state.opt_d)):
        opt_arrays, optimizers[prefix] = optimizer_to_arrays(prefix, opt)
        arrays |= opt_arrays
    meta = {
        "step": state.step,
        "elapsed": state.elapsed,
        "config": state.config.to_dict(),
        "optimizers": optimizers,
        "world_size": 1,
        "extra": state.extra,
    }
    return arrays, meta


def restore_state(state, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Load a checkpoint of either engine into a state built from the same config.

    Both engines' files hold the same tensors and metadata; RNG states of older checkpoints
    are ignored (training draws are functions of (seed, step, critic)).
    """
    modules = {"generator": state.generator, "discriminator": state.discriminator}
    if state.generator_ema is not None:
        modules["generator_ema"] = state.generator_ema
    try:
        for prefix, model in modules.items():
            model_from_arrays(model, arrays, prefix)
        for prefix, opt in (("opt_g", state.opt_g), ("opt_d", state.opt_d)):
            optimizer_from_arrays(opt, arrays, meta["optimizers"][prefix], prefix)
        step = int(meta["step"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint does not match this model ({str(e).splitlines()[0]})"
        ) from None
    state.step = step
    state.elapsed = float(meta.get("elapsed", 0.0))
    state.extra = dict(meta.get("extra", {}))
