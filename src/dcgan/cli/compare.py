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
    from ..summary import summarize

    summaries = [summarize(path) for path in args.runs]  # "not a run directory" in one line
    columns = [
        {
            "config": s.flat_config(),
            "last": s.last,
            "eval": s.evals[-1] if s.evals else None,
            "best": s.best,
            "measured": s.measured,
        }
        for s in summaries
    ]
    rows: list[tuple[str, list[str]]] = [("run", [s.name for s in summaries])]
    rows.append(("step", [_value(c["last"].get("step")) for c in columns]))
    rows.append(("epoch", [_value(c["last"].get("epoch")) for c in columns]))
    rows.append(("wall time", [_duration(c["last"].get("wall_time")) for c in columns]))
    rows += _section("dcgan eval", [c["measured"] for c in columns], _measured_rows)
    rows += _section("--eval-every", [c["eval"] for c in columns], _training_rows)
    rows += _best_rows(columns)
    rows += _config_rows([c["config"] for c in columns])
    print(_render(rows))
    return 0


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
    from ..summary import differing_keys

    differing = differing_keys(configs)
    if len(configs) < 2:
        return []
    if not differing:
        return [("", []), ("[config]", []), ("(identical)", [])]
    return [("", []), ("[config differences]", [])] + [
        (k, [_value(c.get(k)) for c in configs]) for k in differing
    ]


def _value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if v == "":
        return '""'
    return str(v)


def _duration(seconds: float | None) -> str:
    from ..report import format_duration

    return format_duration(seconds)


def _render(rows: list[tuple[str, list[str]]]) -> str:
    width = max(len(label) for label, _ in rows) + 2
    n = max(len(cells) for _, cells in rows)
    col = [max([len(cells[i]) for _, cells in rows if len(cells) > i]) + 2 for i in range(n)]
    lines = []
    for label, cells in rows:
        text = label.ljust(width) + "".join(c.ljust(w) for c, w in zip(cells, col))
        lines.append(text.rstrip())
    return "\n".join(lines)
