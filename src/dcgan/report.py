"""`dcgan report`: one self-contained HTML page about one or more runs, made from the run
directories alone (rundir.py reads them): loss, D-output and speed curves, the metrics with the
best checkpoint marked, the sample-grid timeline, the GIF, generated outputs, config and data.

Every plot is an SVG drawn by matplotlib (the Agg-free SVG backend, no pyplot state, no display)
and every image is inlined as a data: URI, so the file opens anywhere, offline, with no script:
no CDN, no network request, no JavaScript at all. matplotlib is the `report` extra.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import rundir
from .errors import DcganError
from .files import atomic_write, slug
from .summary import RunSummary, differing_keys, summarize

MAX_TIMELINE = 10  # sample grids shown in the timeline (evenly thinned, the last always kept)
MAX_GENERATED = 6  # `dcgan generate` outputs shown per run (the newest)
_SKIP_METRIC = ("step", "eval", "eval_seconds")


def available() -> bool:
    """Whether the report extra (matplotlib) is installed: the trainer refreshes RUN/report.html
    at the end of a run only then, and says nothing otherwise."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def require() -> None:
    """A one-line DcganError naming the extra when matplotlib is missing (check before training
    with --report-every, not an hour in)."""
    _Plots()


def write_report(run_paths: Sequence[Path] | Path, out: Path | None = None) -> Path:
    """Write the report of one or more runs and return its path: `out`, or by default
    RUN/report.html for one run and ./report.html for several. The file is written atomically,
    so a browser refreshing it during training never sees half a page."""
    paths = [Path(run_paths)] if isinstance(run_paths, str | os.PathLike) else list(run_paths)
    if not paths:
        raise DcganError("dcgan report needs at least one run directory")
    summaries = [summarize(p) for p in paths]
    if out is None:
        out = paths[0] / rundir.REPORT_FILE if len(paths) == 1 else Path(rundir.REPORT_FILE)
    page = render_report(summaries)
    out = Path(out)
    atomic_write(out, page.encode())
    os.chmod(out, 0o644)  # a page to share (mkstemp made it 0600)
    return out


def render_report(summaries: list[RunSummary]) -> str:
    """The HTML page for the summaries (see the module docstring)."""
    plots = _Plots()
    title = "dcgan report: " + ", ".join(s.name for s in summaries)
    body = [f"<h1>{_e(title)}</h1>", _overview(summaries)]
    if len(summaries) > 1:
        body.append(_config_differences(summaries))
    body.append("<h2>Training curves</h2>")
    body.append(plots.curves(summaries))
    metrics = plots.metrics(summaries)
    if metrics:
        body += ["<h2>Metrics during training</h2>", metrics]
    measured = _measured_table(summaries)
    if measured:
        body += ["<h2>dcgan eval</h2>", measured]
    for s in summaries:
        body.append(_run_section(s))
    return _PAGE.format(title=_e(title), css=_CSS, body="\n".join(body))


# ---------------------------------------------------------------------------------------------
# plots


class _Plots:
    """Line plots as inline SVG, one color per run."""

    def __init__(self):
        try:
            from matplotlib import rc_context
            from matplotlib.figure import Figure
        except ImportError:
            raise DcganError("dcgan report needs matplotlib: pip install 'dcgan[report]'") from None
        self.Figure, self.rc_context = Figure, rc_context
        self.colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    def curves(self, summaries: list[RunSummary]) -> str:
        panels = [
            ("Losses", "step", [("loss_d", "D", "-"), ("loss_g", "G", "--")], None),
            (
                "D(x) and D(G(z))",
                "step",
                [("d_real", "D(x)", "-"), ("d_fake", "D(G(z))", "--")],
                None,
            ),
            ("Speed against step", "step", [("img_per_s", "img/s", "-")], None),
            ("Speed against wall time", "wall_time", [("img_per_s", "img/s", "-")], "s"),
        ]
        figures = []
        for title, x_key, series, unit in panels:
            fig, ax = self._figure(title, "wall time (s)" if unit else "step")
            drawn = False
            for i, s in enumerate(summaries):
                for key, label, style in series:
                    xs, ys = _series(s.train, x_key, key)
                    if xs:
                        name = label if len(summaries) == 1 else f"{s.name} {label}"
                        ax.plot(xs, ys, style, color=self._color(i, key, len(summaries)),
                                label=name, linewidth=1.3)  # fmt: skip
                        drawn = True
            figures.append(self._svg(fig, ax, title, drawn))
        return '<div class="plots">' + "".join(figures) + "</div>"

    def metrics(self, summaries: list[RunSummary]) -> str:
        keys = list(
            dict.fromkeys(
                k
                for s in summaries
                for r in s.evals
                for k, v in r.items()
                if k not in _SKIP_METRIC and not k.startswith("swd_") and _is_num(v)
            )
        )
        figures = []
        for key in keys:
            fig, ax = self._figure(key, "step")
            drawn = False
            for i, s in enumerate(summaries):
                xs, ys = _series(s.evals, "step", key)
                if not xs:
                    continue
                label = s.name if len(summaries) > 1 else key
                ax.plot(xs, ys, "o-", color=self.colors[i % 6], label=label, markersize=3)
                drawn = True
                if s.best and s.best.get("key") == key:
                    ax.plot([s.best["step"]], [s.best["value"]], "*", color="#e6a700",
                            markersize=14, markeredgecolor="black",
                            label=f"best checkpoint (step {s.best['step']})")  # fmt: skip
            figures.append(self._svg(fig, ax, f"{key} over steps", drawn))
        return '<div class="plots">' + "".join(figures) + "</div>" if figures else ""

    def _color(self, run: int, key: str, runs: int) -> str:
        if runs == 1:  # one run: the two series of a panel get two colors
            return self.colors[1 if key in ("loss_g", "d_fake") else 0]
        return self.colors[run % len(self.colors)]

    def _figure(self, title: str, xlabel: str):
        fig = self.Figure(figsize=(5.2, 3.2), dpi=100, layout="constrained")
        ax = fig.add_subplot()
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        return fig, ax

    def _svg(self, fig, ax, alt: str, drawn: bool) -> str:
        if drawn:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
        buffer = io.BytesIO()
        # a fixed salt: the same run gives the same page (matplotlib's ids are random otherwise);
        # text as text keeps the SVG small
        with self.rc_context({"svg.hashsalt": "dcgan", "svg.fonttype": "none"}):
            fig.savefig(buffer, format="svg", metadata={"Date": None})
        return _img(buffer.getvalue(), "image/svg+xml", alt, "plot")


def _series(records: list[dict], x_key: str, y_key: str) -> tuple[list, list]:
    pairs = [
        (r[x_key], r[y_key]) for r in records if _is_num(r.get(x_key)) and _is_num(r.get(y_key))
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# tables


def _overview(summaries: list[RunSummary]) -> str:
    rows = [("run", [f'<a href="#{_anchor(s)}">{_e(s.name)}</a>' for s in summaries])]
    cols = {
        "step": lambda s: _v(s.last.get("step")),
        "epoch": lambda s: _v(s.last.get("epoch")),
        "training time": lambda s: format_duration(s.last.get("wall_time")),
        "engine / device / precision": _engine,
        "data": _data,
        "model": lambda s: (
            f"{s.config.model.kind} {s.config.model.image_size} px, "
            f"{s.config.model.channels} ch, G{s.config.model.g_features} D{s.config.model.d_features}"
        ),
        "loss": lambda s: s.config.train.loss,
        "best checkpoint": lambda s: (
            f"{s.best['key']} {_v(s.best['value'])} at step {s.best['step']}" if s.best else "-"
        ),
        "path": lambda s: str(s.path.resolve()),
    }
    rows += [(k, [_e(f(s)) for s in summaries]) for k, f in cols.items()]
    return _table(rows, "overview")


def _engine(s: RunSummary) -> str:
    device = s.info.get("device", "device not recorded")
    precision = s.config.train.precision
    if precision == "auto":  # what it resolved to on the device of the last session
        precision += f" ({s.info['precision']})" if "precision" in s.info else ""
    return f"{s.config.train.engine} / {device} / {precision}"


def _data(s: RunSummary) -> str:
    data = s.info.get("data") if isinstance(s.info.get("data"), dict) else {}
    source = s.config.data.source
    text = source if data.get("name") in (None, source) else f"{data['name']} ({source})"
    if "count" in data:
        text += f", {data['count']} images"
    skipped = data.get("skipped")
    text += f", {skipped} skipped file(s)" if _is_num(skipped) else ", skipped files not recorded"
    return text


def _config_differences(summaries: list[RunSummary]) -> str:
    flats = [s.flat_config() for s in summaries]
    keys = differing_keys(flats)
    if not keys:
        return "<h2>Config differences</h2><p>The runs' configs are identical.</p>"
    rows = [("key", [_e(s.name) for s in summaries])]
    rows += [(k, [_e(_v(f.get(k))) for f in flats]) for k in keys]
    return "<h2>Config differences</h2>" + _table(rows, "diff")


def _measured_table(summaries: list[RunSummary]) -> str:
    measured = [s.measured for s in summaries]
    if not any(measured):
        return ""
    keys = list(dict.fromkeys(k for m in measured if m for k in m["metrics"]))
    rows = [("run", [_e(s.name) for s in summaries])]
    rows.append(("at step", [_e(_v(m and m.get("step"))) for m in measured]))
    rows.append(
        ("images / ref", [_e(f"{m.get('num')} / {m.get('ref')}" if m else "-") for m in measured])
    )
    rows += [(k, [_e(_v(m and m["metrics"].get(k))) for m in measured]) for k in keys]
    return _table(rows, "measured")


def _table(rows: list[tuple[str, list[str]]], css: str) -> str:
    """Rows of (label, cells already escaped)."""
    out = [f'<table class="{css}">']
    for i, (label, cells) in enumerate(rows):
        tag = "th" if i == 0 else "td"
        out.append(
            f"<tr><th>{_e(label)}</th>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"
        )
    return "".join(out) + "</table>"


# ---------------------------------------------------------------------------------------------
# one run's images and files


def _run_section(s: RunSummary) -> str:
    parts = [f'<section id="{_anchor(s)}"><h2>Run {_e(s.name)}</h2>']
    final = s.samples[-1] if s.samples else None
    gif = s.path / rundir.GIF_FILE
    real = s.path / rundir.REAL_FILE
    figures = []
    if final:
        figures.append(_figure(final, f"final grid (step {_sample_step(final)})"))
    if gif.is_file():
        figures.append(_figure(gif, "progress.gif"))
    if real.is_file():
        figures.append(_figure(real, "real training images"))
    parts.append(
        '<div class="images">' + "".join(figures) + "</div>"
        if figures
        else "<p>No sample grids yet.</p>"
    )
    if len(s.samples) > 1:
        parts.append("<h3>Fixed-noise grids over training</h3>")
        shown = _thin(s.samples, MAX_TIMELINE)
        parts.append(
            '<div class="timeline">'
            + "".join(_figure(p, f"step {_sample_step(p)}") for p in shown)
            + "</div>"
        )
    generated = _generated(s)
    if generated:
        parts += ["<h3>Generated (dcgan generate)</h3>", generated]
    parts.append(_files(s))
    parts.append(
        "<details><summary>config.json</summary><pre>"
        + _e(_pretty(s.config.to_dict()))
        + "</pre></details>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def _generated(s: RunSummary) -> str:
    """The nice-mode, interpolation and arithmetic outputs first, then plain samples."""
    folders = rundir.Run(s.path).generated_dirs()
    rank = lambda p: (
        0 if any(m in p.name for m in ("nice", "interpolate", "arithmetic")) else 1,
        p.name,
    )
    figures = []
    for folder in sorted(folders, key=rank)[:MAX_GENERATED]:
        grid = folder / "grid.png"
        if grid.is_file():
            figures.append(_figure(grid, folder.name))
            continue
        pngs = sorted(folder.glob("*.png"))[:64]
        if pngs:
            figures.append(_img(_tile(pngs), "image/png", folder.name, "grid", folder.name))
    return '<div class="images">' + "".join(figures) + "</div>" if figures else ""


def _tile(files: list[Path]) -> bytes:
    """A grid PNG of image files (a generate folder written without --grid)."""
    import numpy as np
    from PIL import Image

    from .images import make_grid, to_pil

    arrays = []
    for f in files:
        with Image.open(f) as im:
            arrays.append(np.asarray(im.convert("RGB")).transpose(2, 0, 1))
    shape = arrays[0].shape
    grid = make_grid(np.stack([a for a in arrays if a.shape == shape]))
    buffer = io.BytesIO()
    to_pil(grid).save(buffer, format="PNG")
    return buffer.getvalue()


def _files(s: RunSummary) -> str:
    rows = [("checkpoint", ["step", "size"])]
    for p in s.checkpoints + ([rundir.best_path(s.path)] if s.best else []):
        step = rundir.checkpoint_step(p)
        step_text = str(step) if step is not None else f"{s.best['step']} (best)"
        rows.append((p.name, [_e(step_text), _e(_size(p))]))
    if len(rows) == 1:
        return "<p>No checkpoints kept.</p>"
    return "<h3>Checkpoints kept</h3>" + _table(rows, "files")


def _figure(path: Path, caption: str) -> str:
    mime = {".png": "image/png", ".gif": "image/gif"}.get(path.suffix.lower(), "image/png")
    return _img(path.read_bytes(), mime, caption, "grid", caption)


def _img(data: bytes, mime: str, alt: str, css: str, caption: str | None = None) -> str:
    src = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    tag = f'<img class="{css}" alt="{_e(alt)}" src="{src}">'
    if caption is None:
        return tag
    return f"<figure>{tag}<figcaption>{_e(caption)}</figcaption></figure>"


def _thin(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    picks = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in picks]


def _sample_step(path: Path) -> int:
    return int(path.stem.split("_")[-1])


def _size(path: Path) -> str:
    try:
        n = path.stat().st_size
    except OSError:
        return "-"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} kB"


def _pretty(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2)


def _anchor(s: RunSummary) -> str:
    return "run-" + slug(s.name, limit=None)


def _v(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return '""' if value == "" else str(value)


def _e(text: Any) -> str:
    return html.escape(str(text))


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222;
       padding: 0 16px; }
h1 { font-size: 22px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
.plots img { width: 520px; max-width: 100%; }
.images, .timeline { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.images img { max-width: 360px; image-rendering: pixelated; }
.timeline img { width: 140px; image-rendering: pixelated; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
pre { background: #f7f7f7; padding: 8px; overflow: auto; }
"""

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""


def format_duration(seconds: float | None) -> str:
    """71 -> "1m11s", 3725 -> "1h02m05s", None -> "-"."""
    if seconds is None:
        return "-"
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m{s:02d}s" if hours else f"{m}m{s:02d}s" if m else f"{s}s"
