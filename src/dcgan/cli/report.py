"""`dcgan report`: one self-contained HTML page about one or more runs (dcgan.report)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report of one or more runs: curves, metrics, sample grids, config",
        description="Write one self-contained HTML file (plots as inline SVG, images inlined, no "
        "network, no JavaScript) showing the loss, D(x)/D(G(z)) and speed curves, the metrics "
        "over steps with the best checkpoint marked, the sample-grid timeline, the GIF, generated "
        "outputs, the config, checkpoints and data. Several runs: overlaid curves and a table of "
        "the config values that differ. Needs matplotlib: pip install 'dcgan[report]'.",
    )
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run directories")
    p.add_argument(
        "--out",
        type=Path,
        help="output file (default RUN/report.html for one run, ./report.html for several)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import write_report

    out = write_report(args.runs, args.out)
    print(f"wrote {out}", file=sys.stderr)
    return 0
