"""`dcgan export`: a run's sampling generator as the generator folder (safetensors +
config.json), an ONNX file (onnxruntime, the `onnx` extra) or a TorchScript file."""

from __future__ import annotations

import sys
from pathlib import Path

from .options import positive_int_or


def register(sub) -> None:
    from ..export import FORMATS

    p = sub.add_parser(
        "export",
        help="export a run's generator (safetensors folder, ONNX, TorchScript)",
        description="Export the sampling generator (the EMA generator when the run has one) of a "
        "run directory, checkpoint file or generator folder. onnx and torchscript files map z "
        "float32 (N, latent_dim), standard normal, to images float32 (N, C, H, W) in [-1, 1]; "
        "their metadata says so. onnx needs: pip install 'dcgan[onnx]'.",
    )
    p.add_argument("run", type=Path, help="run directory, checkpoint file or generator folder")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument(
        "--out",
        type=Path,
        help="where (default RUN/generator/, RUN/generator.onnx, RUN/generator.torchscript.pt)",
    )
    p.add_argument(
        "--batch",
        type=positive_int_or("dynamic", None),
        default=None,
        metavar="dynamic|N",
        help="onnx/torchscript: any batch size (dynamic, the default) or exactly N",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--checkpoint", default="latest", choices=("latest", "best"), help="which checkpoint"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export import export

    out = export(args.run, args.format, args.out, args.batch, args.force, args.checkpoint)
    size = sum(f.stat().st_size for f in out.rglob("*")) if out.is_dir() else out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.2f} MB)", file=sys.stderr)
    return 0
