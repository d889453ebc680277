"""The NumPy engine, and the modules it may use, import no torch: checked by parsing, and by running
the CLI's numpy paths (train, resume, generate) and looking at sys.modules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "dcgan"
ENGINE_FILES = sorted((PACKAGE / "numpy_engine").rglob("*.py"))
SHARED_FILES = [
    PACKAGE / f"{name}.py"
    for name in (
        "config",
        "checkpoint",
        "rundir",
        "datasets",
        "images",
        "loop",
        "session",
        "saving",
        "signals",
        "sampling",
        "files",
        "engines",
        "watch",
        "draw",
        "tracking",
        "artefact",
        "latent_space",
    )
]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_engine_has_modules():
    assert {p.name for p in ENGINE_FILES} >= {"ops.py", "layers.py", "models.py", "optim.py"}


@pytest.mark.parametrize("path", ENGINE_FILES + SHARED_FILES, ids=lambda p: p.name)
def test_no_torch_import(path):
    torchy = {m for m in _imported_modules(path) if m.split(".")[0] in ("torch", "torchvision")}
    assert not torchy, f"{path.name} imports {sorted(torchy)}"


def test_engine_relative_imports_stay_torch_free():
    # `from ..models import X` would pull in the torch models; only torch-free siblings are allowed
    allowed = {"config", "checkpoint", "rundir", "datasets", "images", "errors", "engines", "draw"}
    allowed |= {"artefact", "latent_space", "architecture"}
    for path in ENGINE_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                # `from ..checkpoint import x` names the module; `from .. import checkpoint` the alias
                names = [node.module] if node.module else [a.name for a in node.names]
                for name in names:
                    assert name.split(".")[0] in allowed, (path.name, name)


_NO_TORCH_RUN = """
import sys
from dcgan.cli import main
common = ["--steps", "{steps}", "--no-progress", "--runs-dir", sys.argv[1]]
tiny = ["--g-features", "4", "--d-features", "4", "--latent-dim", "8", "--batch-size", "8"]
assert main(["train", "--engine", "numpy", "--name", "r", *tiny, *common]) == 0
assert main(["train", "--resume", sys.argv[1] + "/r", "--steps", "4", "--no-progress"]) == 0
assert main(["generate", sys.argv[1] + "/r", "--engine", "numpy", "--num", "4", "--nice", "0.5"]) == 0
from dcgan.export import write_generator
folder = str(write_generator(sys.argv[1] + "/r"))
z = sys.argv[1] + "/z.npy"
gen = ["generate", folder, "--engine", "numpy"]
assert main([*gen, "--seeds", "0-3", "--truncation", "0.8", "--save-latents", z]) == 0
assert main([*gen, "--latents", z, "--interpolate", "3", "--out", sys.argv[1] + "/i"]) == 0
print("torch" in sys.modules, "torchvision" in sys.modules)
"""


def test_numpy_cli_paths_never_import_torch(tmp_path):
    code = _NO_TORCH_RUN.replace("{steps}", "2")
    env = {**os.environ, "DCGAN_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"], proc.stdout
