"""The engine contract: what the loop, sampling and evaluation need from an engine, the inputs of
one step, and the registry of engines.

An engine is a module (`dcgan.torch_engine`, `dcgan.numpy_engine.train`) whose functions satisfy
`Engine`. It is called by the loop (`dcgan.loop`) and by sampling and evaluation, and never
imports them: every fact it needs (the step's batches and draws, the EMA decay, the data) comes
in as an argument. Torch-free: engines are imported by name, lazily, so the NumPy engine's path
never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .config import ENGINES, RunConfig
from .errors import UsageError

_MODULES = {"torch": "dcgan.torch_engine", "numpy": "dcgan.numpy_engine.train"}
assert set(_MODULES) == set(ENGINES)


@dataclass
class StepInputs:
    """One generator step's inputs for this rank: n_critic real batches (model range, on the
    engine's device), their latents (one more for G's fresh fake when n_critic > 1) and, for
    losses with a gradient penalty, its interpolation weights. Latents and weights are host
    float32 arrays; each is this rank's rows of the global batch's draw. `ema_decay`: the decay
    of this step's EMA update (the loop's warm-up schedule). A conditional run also has the real
    batches' labels and the fakes' labels (one per entry of z), host int64 arrays."""

    reals: list
    z: list[np.ndarray]
    gp_weights: list[np.ndarray] | None = None
    ema_decay: float = 0.0
    labels: list[np.ndarray] | None = None
    fake_labels: list[np.ndarray] | None = None


class Engine(Protocol):
    """The functions an engine module provides. `State` is the engine's own train state, with at
    least .config, .step, .elapsed, .extra (JSON-able, travels in checkpoints), .group,
    .precision and .sampler (the generator to sample from: the EMA one when there is one)."""

    name: str

    def resolve_device(self, name: str = "auto", group: Any = None) -> Any:
        """The device for a name ("auto", "cpu", "cuda", "mps"); absent ones are a UsageError."""

    def cpu_threads(self, count: int | None = None) -> int | None:
        """The engine's CPU thread count, after setting it to `count` when given; None where
        the engine cannot choose it (then nothing was set)."""

    # training: the state and one step

    def create_state(self, config: RunConfig, device: Any, group: Any = None) -> Any:
        """Fresh models (initialised from config.train.seed) and optimizers."""

    def load_state(
        self, path: Any, device: Any, config: RunConfig | None = None, group: Any = None
    ) -> Any:
        """A state restored from a checkpoint file of either engine."""

    def state_to_arrays(self, state: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The state as a checkpoint's named arrays and JSON metadata (dcgan.checkpoint)."""

    def feeder(self, state: Any, data: Any) -> Callable[[np.ndarray], Any]:
        """`batch(indices)`: those images of `data` as a model-range batch on the device."""

    def train_step(self, state: Any, inputs: StepInputs) -> dict[str, Any]:
        """n_critic D updates and one G update; device scalars back (no host sync)."""

    # models on their own: sampling, evaluation, the progress grids

    def load_models(
        self, config: RunConfig, generator: dict, discriminator: dict | None, device: Any
    ) -> tuple[Any, Any]:
        """(G, D or None) in eval mode from state-dict arrays (dcgan.artefact.Weights)."""

    def generate(
        self, generator: Any, z: np.ndarray, batch_size: int = 256, labels: Any = None
    ) -> np.ndarray:
        """Images uint8 (N, C, H, W) from host latents float32 (N, latent_dim), in eval mode;
        a conditional G also takes labels int64 (N,) or class weights float32 (N, K)."""

    def score(
        self, discriminator: Any, images: np.ndarray, batch_size: int = 512, labels: Any = None
    ) -> np.ndarray:
        """D's logits, float64 (N,), for uint8 images (N, C, H, W): higher is "more real"."""


def get_engine(name: str) -> Engine:
    """The engine module for a name in config.ENGINES, imported on first use."""
    if name not in _MODULES:
        raise UsageError(f"--engine {name} is not one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name])  # type: ignore[return-value]


class Solo:
    """The process group of a single process: rank 0 of 1, every collective a no-op (the torch
    engine's `distributed.ProcessGroup` is the many-process one)."""

    rank, world, local_rank, is_main = 0, 1, 0, True

    def barrier(self) -> None:
        pass

    def any(self, flag: bool) -> bool:
        return flag

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        return values

    def broadcast(self, obj):
        return obj

    def close(self) -> None:
        pass
