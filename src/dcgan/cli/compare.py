"""`dcgan compare`: runs side by side: steps, wall time, the latest metrics (from `dcgan eval` and
from `--eval-every`), and the config keys that differ."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs side by side: metrics, steps, wall time, config differences",
        description="Print a table with one column per run: its step and training time, the "
        "latest `dcgan eval` metrics (RUN/metrics.jsonl), the latest --eval-every metrics and "
        "best checkpoint (stats.jsonl), and every config value that differs between the runs.",
    )
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run directories")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoint import read_run_config
    from ..errors import CheckpointError
    from ..evaluation import read_metrics
    from ..tracking import Run

    columns = []
    for path in args.runs:
        config = read_run_config(path)  # also says "not a run directory" in one line
        try:
            stats = Run(path).read_stats()
        except ValueError as e:  # a hand-edited or truncated line
            raise CheckpointError(f"{path / 'stats.jsonl'} is unreadable ({e})") from None
        train_lines = [r for r in stats if not r.get("eval")]
        eval_lines = [r for r in stats if r.get("eval")]
        columns.append(
            {
                "config": _flatten(config.to_dict()),
                "last": train_lines[-1] if train_lines else {},
                "eval": eval_lines[-1] if eval_lines else None,
                "best": _best(eval_lines, config),
                "measured": _latest_measured(read_metrics(path)),
            }
        )
    rows: list[tuple[str, list[str]]] = [("run", [_name(p) for p in args.runs])]
    rows.append(("step", [_value(c["last"].get("step")) for c in columns]))
    rows.append(("epoch", [_value(c["last"].get("epoch")) for c in columns]))
    rows.append(("wall time", [_duration(c["last"].get("wall_time")) for c in columns]))
    rows += _section("dcgan eval", [c["measured"] for c in columns], _measured_rows)
    rows += _section("--eval-every", [c["eval"] for c in columns], _training_rows)
    rows += _best_rows(columns)
    rows += _config_rows([c["config"] for c in columns])
    print(_render(rows))
    return 0


def _latest_measured(lines: list[dict]) -> dict | None:
    """The last metrics.jsonl line, with metrics that other evals of the same checkpoint and
    settings measured (`dcgan eval --metrics swd` then `--metrics digits`) merged in."""
    if not lines:
        return None
    last = lines[-1]
    same = ("step", "checkpoint", "num", "ref", "seed")
    metrics: dict = {}
    for line in lines:
        if all(line.get(k) == last.get(k) for k in same):
            metrics |= line.get("metrics", {})
    return {**last, "metrics": metrics}


def _section(title: str, records: list, to_rows) -> list[tuple[str, list[str]]]:
    """A heading row, then one row per metric key any run has (in first-seen order)."""
    if not any(records):
        return []
    return [("", []), (f"[{title}]", []), *to_rows(records)]


def _measured_rows(records: list[dict | None]) -> list[tuple[str, list[str]]]:
    rows = [
        ("at step", [_value(r and r.get("step")) for r in records]),
        ("checkpoint", [_value(r and r.get("checkpoint")) for r in records]),
        ("images / ref", [f"{r['num']} / {r['ref']}" if r else "-" for r in records]),
    ]
    return rows + _metric_rows([(r or {}).get("metrics", {}) for r in records])


def _training_rows(records: list[dict | None]) -> list[tuple[str, list[str]]]:
    rows = [("at step", [_value(r and r.get("step")) for r in records])]
    skip = {"step", "eval", "eval_seconds"}
    return rows + _metric_rows(
        [{k: v for k, v in (r or {}).items() if k not in skip} for r in records]
    )


def _metric_rows(dicts: list[dict]) -> list[tuple[str, list[str]]]:
    keys = list(dict.fromkeys(k for d in dicts for k in d))
    return [(k, [_value(d.get(k)) for d in dicts]) for k in keys]


def _best(eval_lines: list[dict], config) -> dict | None:
    """The best --eval-every line by the first metric's key (what best.safetensors holds)."""
    from ..errors import DcganError
    from ..evaluation import training_metric_names
    from ..metrics import METRICS

    try:
        info = METRICS[training_metric_names(config)[0]]
    except DcganError:
        return None
    scored = [r for r in eval_lines if isinstance(r.get(info.key), (int, float))]
    if not scored:
        return None
    sign = 1 if info.lower_is_better else -1
    best = min(scored, key=lambda r: sign * r[info.key])
    return {"key": info.key, "value": best[info.key], "step": best["step"]}


def _best_rows(columns: list[dict]) -> list[tuple[str, list[str]]]:
    bests = [c["best"] for c in columns]
    if not any(bests):
        return []
    return [
        (
            "best checkpoint",
            [f"{b['key']} {_value(b['value'])} @ {b['step']}" if b else "-" for b in bests],
        )
    ]


def _config_rows(configs: list[dict]) -> list[tuple[str, list[str]]]:
    keys = list(dict.fromkeys(k for c in configs for k in c))
    differing = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    if len(configs) < 2:
        return []
    if not differing:
        return [("", []), ("[config]", []), ("(identical)", [])]
    return [("", []), ("[config differences]", [])] + [
        (k, [_value(c.get(k)) for c in configs]) for k in differing
    ]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        elif key != "schema_version":
            out[prefix + key] = value
    return out


def _name(path: Path) -> str:
    return path.resolve().name


def _value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if v == "":
        return '""'
    return str(v)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m{s:02d}s" if hours else f"{m}m{s:02d}s" if m else f"{s}s"


def _render(rows: list[tuple[str, list[str]]]) -> str:
    width = max(len(label) for label, _ in rows) + 2
    n = max(len(cells) for _, cells in rows)
    col = [max([len(cells[i]) for _, cells in rows if len(cells) > i]) + 2 for i in range(n)]
    lines = []
    for label, cells in rows:
        text = label.ljust(width) + "".join(c.ljust(w) for c, w in zip(cells, col))
        lines.append(text.rstrip())
    return "\n".join(lines)
