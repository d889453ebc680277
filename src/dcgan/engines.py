"""The engine contract: what `dcgan.runner` needs from an engine, and the registry of engines.

An engine is a module (`dcgan.torch_engine`, `dcgan.numpy_engine.train`) whose functions satisfy
`Engine`; the runner owns everything else (the run directory, the loop and its cadences, the
randomness, signals, evaluation and files). Torch-free: engines are imported by name, lazily, so
the NumPy engine's path never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .config import ENGINES, RunConfig
from .errors import UsageError

_MODULES = {"torch": "dcgan.torch_engine", "numpy": "dcgan.numpy_engine.train"}
assert set(_MODULES) == set(ENGINES)


class Engine(Protocol):
    """The functions an engine module provides. `State` is the engine's own train state, with at
    least .config, .step, .elapsed, .extra (JSON-able, travels in checkpoints) and .group."""

    name: str

    def resolve_device(self, name: str = "auto", group: Any = None) -> Any:
        """The device for a name ("auto", "cpu", "cuda", "mps"); absent ones are a UsageError."""

    def cpu_threads(self, count: int | None = None) -> int | None:
        """The engine's CPU thread count, after setting it to `count` when given; None where
        the engine cannot choose it (then nothing was set)."""

    def create_state(self, config: RunConfig, device: Any, group: Any = None) -> Any:
        """Fresh models (initialised from config.train.seed) and optimizers."""

    def load_state(
        self, path: Any, device: Any, config: RunConfig | None = None, group: Any = None
    ) -> Any:
        """A state restored from a checkpoint file of either engine."""

    def feeder(self, state: Any, data: Any) -> Callable[[np.ndarray], Any]:
        """`batch(indices)`: those images of `data` as a model-range batch on the device."""

    def train_step(self, state: Any, inputs: Any) -> dict[str, Any]:
        """n_critic D updates and one G update from runner.StepInputs; device scalars back."""

    def grid(self, state: Any) -> np.ndarray:
        """The fixed-noise grid of the sampling generator (EMA if any), uint8 (N, C, H, W)."""

    def state_to_arrays(self, state: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The state as a checkpoint's named arrays and JSON metadata (dcgan.checkpoint)."""


def get_engine(name: str) -> Engine:
    """The engine module for a name in config.ENGINES, imported on first use."""
    if name not in _MODULES:
        raise UsageError(f"--engine {name} is not one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name])  # type: ignore[return-value]
