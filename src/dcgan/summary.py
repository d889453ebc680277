"""What `dcgan compare` and `dcgan report` show about a run: a RunSummary read from its directory
(through rundir.py), and the flattened configs that tell runs apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .config import RunConfig
from .errors import CheckpointError
from .rundir import Run, best_path


@dataclass
class RunSummary:
    """What `dcgan compare` and `dcgan report` show about one run."""

    path: Path
    config: RunConfig
    train: list[dict] = field(default_factory=list)  # stats.jsonl log lines
    evals: list[dict] = field(default_factory=list)  # stats.jsonl {"eval": true} lines
    measured: dict | None = None  # the latest `dcgan eval`, same-settings metrics merged
    best: dict | None = None  # {"metric", "key", "value", "step"} of best.safetensors
    checkpoints: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def last(self) -> dict:
        return self.train[-1] if self.train else {}

    def flat_config(self) -> dict[str, Any]:
        return flatten(self.config.to_dict())


def summarize(path: Path) -> RunSummary:
    """Read a run directory (a CheckpointError in one line when it is not one)."""
    run = Run.open(path)
    config = run.config()
    stats = run.read_stats()
    return RunSummary(
        path=run.path,
        config=config,
        train=[r for r in stats if not r.get("eval")],
        evals=[r for r in stats if r.get("eval")],
        measured=latest_measured(run.read_metrics()),
        best=best_record(run.path),
        checkpoints=run.checkpoints(),
        samples=run.sample_files(),
        info=run.info(),
    )


def best_record(run_dir: Path) -> dict | None:
    """What best.safetensors holds ({"metric", "key", "value", "step"}), from its header alone;
    None when the run has none or it does not read."""
    path = best_path(run_dir)
    if not path.is_file():
        return None
    try:
        best = ckpt.read_meta(path).get("extra", {}).get("best")
    except (CheckpointError, AttributeError):
        return None
    if not isinstance(best, dict) or not {"key", "value", "step"} <= best.keys():
        return None
    return best


def latest_measured(lines: list[dict]) -> dict | None:
    """The last metrics.jsonl line, with metrics that other evals of the same checkpoint and
    settings measured (`dcgan eval --metrics swd` then `--metrics digits`) merged in."""
    if not lines:
        return None
    last = lines[-1]
    same = ("step", "checkpoint", "num", "ref", "seed")
    metrics: dict = {}
    for line in lines:
        if all(line.get(k) == last.get(k) for k in same) and isinstance(line.get("metrics"), dict):
            metrics |= line["metrics"]
    return {**last, "metrics": metrics}


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr_g": 2e-4}} -> {"train.lr_g": 2e-4} (schema_version left out)."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        elif key != "schema_version":
            out[prefix + key] = value
    return out


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The flattened config keys whose values are not all the same."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
