"""The NumPy engine, and the modules it may use, import no torch (checked by parsing, not running)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "dcgan"
ENGINE_FILES = sorted((PACKAGE / "numpy_engine").rglob("*.py"))
SHARED_FILES = [PACKAGE / f"{name}.py" for name in ("config", "checkpoint", "datasets", "images")]


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
    allowed = {"config", "checkpoint", "datasets", "images", "errors"}
    for path in ENGINE_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert (node.module or "").split(".")[0] in allowed, (path.name, node.module)
