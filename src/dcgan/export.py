"""Exporting a run's sampling generator: the generator artefact (safetensors + config.json, in
`artefact`), ONNX (run by onnxruntime, the `onnx` extra) and TorchScript (torch.jit.load).

An exported file maps z float32 (N, latent_dim), standard normal, to images float32
(N, C, H, W) in [-1, 1] (NCHW; C is 1 for gray, 3 for RGB), and says so in its metadata: ONNX
metadata_props, TorchScript's `_extra_files["dcgan.json"]`. Torch is imported only inside the
functions that need it, so the NumPy engine's training can call `write_generator`.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

from . import artefact
from .artefact import write_generator
from .errors import DcganError, UsageError
from .files import atomic_write
from .version import __version__

__all__ = ["FORMATS", "export", "metadata", "write_generator"]

FORMATS = ("safetensors", "onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
EXTRA_FILE = "dcgan.json"  # TorchScript's _extra_files entry
ONNX_EXTRA = "pip install 'dcgan[onnx]'"


def metadata(weights: artefact.GeneratorWeights, batch: int | None) -> dict[str, str]:
    """What a user of the exported file needs, as string pairs (ONNX metadata_props are strings)."""
    m = weights.config.model
    return {
        "producer": f"dcgan {__version__}",
        "input": "z",
        "input_shape": json.dumps([batch or "N", m.latent_dim]),
        "latent_dim": str(m.latent_dim),
        "latent_distribution": "standard normal, float32",
        "output": "images",
        "output_shape": json.dumps([batch or "N", m.channels, m.image_size, m.image_size]),
        "output_range": "[-1, 1]",
        "to_uint8": "round((x + 1) * 127.5), clipped to 0..255",
        "layout": "NCHW",
        "channels": "gray" if m.channels == 1 else "RGB",
        "image_size": str(m.image_size),
        "model": json.dumps(weights.config.model.__dict__),
        "step": str(weights.step),
        "ema": str(weights.ema).lower(),
    } | _class_metadata(m, batch)


def _class_metadata(m, batch: int | None) -> dict[str, str]:
    """A conditional generator's second input: the class of each image."""
    if not m.conditional:
        return {}
    return {
        "input": "z, labels",
        "labels_shape": json.dumps([batch or "N"]),
        "labels": "int64 class numbers; class k is class_names[k]",
        "class_names": json.dumps(list(m.class_names)),
    }


def default_out(weights: artefact.GeneratorWeights, fmt: str) -> Path:
    run = artefact.run_dir_of(weights.path)
    if fmt == "safetensors":
        return run / artefact.GENERATOR_DIR
    return run / f"generator{SUFFIXES[fmt]}"


def export(
    source: Path,
    fmt: str,
    out: Path | None = None,
    batch: int | None = None,
    force: bool = False,
    which: str = "latest",
) -> Path:
    """Export the sampling generator of a run directory, checkpoint or generator folder as `fmt`
    (one of FORMATS) to `out` (default RUN/generator, RUN/generator.onnx or
    RUN/generator.torchscript.pt). `batch` None is a dynamic batch; N fixes it. An existing `out`
    is a UsageError unless `force`; the file appears whole or not at all. Returns `out`."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt} is not one of {', '.join(FORMATS)}")
    if fmt == "safetensors" and batch is not None:
        raise UsageError("--batch is for --format onnx and torchscript (safetensors has no batch)")
    if fmt == "onnx":
        _require_onnx()
    weights = artefact.load(Path(source), which, discriminator=False)
    out = Path(out) if out is not None else default_out(weights, fmt)
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to replace it or --out another path")
    if fmt == "safetensors":
        return write_generator(weights.path, out)
    generator = _torch_generator(weights)
    meta = metadata(weights, batch)
    data = _onnx_bytes(generator, weights, batch, meta) if fmt == "onnx" else None
    if fmt == "torchscript":
        data = _torchscript_bytes(generator, weights, batch, meta)
    if out.is_dir():
        raise UsageError(f"{out} is a folder; --out names the {fmt} file to write")
    atomic_write(out, data)
    return out


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401  (torch.onnx.export's exporter needs it)
    except ImportError as e:
        raise DcganError(
            f"--format onnx needs the onnx extra ({e.name} is missing): {ONNX_EXTRA}"
        ) from None


def _torch_generator(weights: artefact.GeneratorWeights) -> Any:
    """A float32 CPU generator in eval mode and the default (NCHW) memory format."""
    import torch

    from .models import build_models

    generator, _ = build_models(weights.config.model)
    generator.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.generator.items()})
    return generator.eval()


def _onnx_bytes(generator, weights, batch: int | None, meta: dict[str, str]) -> bytes:
    import onnx
    import torch

    dim = weights.config.model.latent_dim
    args, names = _example_inputs(weights, batch)
    n = torch.export.Dim("N")
    dynamic = None if batch else {name: {0: n} for name in ("z", "y")[: len(args)]}
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            generator,
            args,
            input_names=names,
            output_names=["images"],
            dynamic_shapes=dynamic,
            dynamo=True,
            verbose=False,
        )
    model = program.model_proto
    model.doc_string = (
        f"dcgan generator (step {weights.step}): z float32 (N, {dim}) standard normal"
        f"{', labels int64 (N,)' if len(args) > 1 else ''} -> images float32 (N, C, H, W) in "
        "[-1, 1]"
    )
    model.producer_name, model.producer_version = "dcgan", __version__
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _torchscript_bytes(generator, weights, batch: int | None, meta: dict[str, str]) -> bytes:
    import torch

    dim = weights.config.model.latent_dim
    args, _ = _example_inputs(weights, batch)
    # torch 2.13 marks torch.jit deprecated (for torch.export); its files still load everywhere
    # libtorch runs, which is what this format is for
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(generator, args)
        wrap = _Checked if len(args) == 1 else _CheckedConditional
        checked = torch.jit.script(wrap(traced, dim, batch or 0))
        buf = io.BytesIO()
        torch.jit.save(checked, buf, _extra_files={EXTRA_FILE: json.dumps(meta)})
    return buf.getvalue()


def _example_inputs(weights, batch: int | None) -> tuple[tuple, list[str]]:
    """The trace's inputs: (z,) or, for a conditional generator, (z, labels)."""
    import torch

    m = weights.config.model
    z = torch.zeros(batch or 2, m.latent_dim)
    if not m.conditional:
        return (z,), ["z"]
    return (z, torch.zeros(batch or 2, dtype=torch.int64)), ["z", "labels"]


def _check(z, latent_dim: int, batch: int) -> None:
    """The shape check of an exported generator (a trace would accept any shape silently)."""
    if z.dim() != 2 or z.shape[1] != latent_dim:
        raise ValueError("z must be (N, latent_dim): see the dcgan.json extra file")
    if batch > 0 and z.shape[0] != batch:
        raise ValueError("this export has a fixed batch: see the dcgan.json extra file")


def _Checked(inner, latent_dim: int, batch: int):
    """The traced generator behind `_check`: z -> images."""
    import torch

    class Checked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.generator, self.latent_dim, self.batch = inner, latent_dim, batch

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            _check(z, self.latent_dim, self.batch)
            return self.generator(z)

    return Checked()


def _CheckedConditional(inner, latent_dim: int, batch: int):
    """The traced conditional generator behind `_check`: (z, labels (N,)) -> images."""
    import torch

    class Checked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.generator, self.latent_dim, self.batch = inner, latent_dim, batch

        def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            _check(z, self.latent_dim, self.batch)
            if labels.shape != z.shape[:1]:
                raise ValueError("labels must be (N,), one class per latent: see dcgan.json")
            return self.generator(z, labels)

    return Checked()


class _quiet:
    """torch.onnx.export prints its progress to stdout; a CLI prints one line."""

    def __enter__(self):
        import contextlib
        import logging

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        logger = logging.getLogger("torch.onnx")  # "torchvision is not installed" warnings
        self._stack.callback(logger.setLevel, logger.level)
        logger.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False
