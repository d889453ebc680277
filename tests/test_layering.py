"""Layering of src/dcgan (issue 23): no import cycles among its modules, and no import that runs
against the declared layer order. Module-level and in-function imports alike, read with `ast`.

An import counts as an edge to the module it names: `from . import a` (a submodule) is an edge to
`a`; `from .pkg import f` (a function) is an edge to `pkg`; `importlib.import_module("dcgan.x")`
with a literal string is an edge to `dcgan.x`. The parent packages that Python initialises on the
way (`dcgan/__init__` for every import) are not counted: every module would then depend on the
top of the library. A package's `__init__` is counted only where code names the package itself.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parents[1] / "src" / "dcgan"

# From the bottom up. A module may import its own layer or any lower one. Names are relative to
# `dcgan`; "__init__" is the package `dcgan` itself. An entry naming a package covers its
# submodules too, unless the list names any of them separately (then each must be named). Every
# module in src/dcgan is covered exactly once, and every entry names a module that exists.
# docs/ARCHITECTURE.md describes these layers; this list keeps it honest.
# fmt: off
LAYERS: list[tuple[str, list[str]]] = [
    ("base", [
        "errors", "version", "values", "pixels", "images", "perf", "watch", "_forkserver_preload",
        "files",
    ]),
    ("config", ["config"]),  # the recipe; imports only errors
    ("foundations", [
        "draw", "limits", "architecture", "latent_space", "augment", "losses", "models",
        "downloads", "matfile", "distributed", "tensorboard_log", "engines", "checkpoint",
        "rundir", "summary", "artefact", "folders", "prepared", "standard_sets", "datasets",
        "classes", "archives",
        "torch_serialize", "numpy_engine.backend", "numpy_engine.ops", "numpy_engine.layers",
        "numpy_engine.losses", "numpy_engine.models", "numpy_engine.optim",
        "numpy_engine.serialize",
        "metrics",  # it imports only datasets, files, pixels and errors
    ]),
    ("engines", ["torch_engine", "numpy_engine.train", "numpy_engine"]),  # never the loop
    ("services", [
        "loop", "saving", "signals", "sampling", "evaluation", "export", "report", "tracking",
    ]),
    ("lifecycle", ["session", "__init__"]),
    ("cli", ["cli", "__main__"]),
]
# fmt: on


class Import(NamedTuple):
    source: str  # the importing module, dotted
    target: str  # the imported module of the same package, dotted
    where: str  # "src/dcgan/x.py:12"


def find_modules(pkg: Path) -> dict[str, Path]:
    """Every module of the package at `pkg`, by dotted name (a package by its own name)."""
    modules = {}
    for file in sorted(pkg.rglob("*.py")):
        parts = (pkg.name, *file.relative_to(pkg).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return modules


def _named(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The dotted names an import node asks for; `from X import n` gives X.n."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        stem = node.module or ""
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            stem = ".".join(base + ([node.module] if node.module else []))
        return [f"{stem}.{alias.name}" for alias in node.names]
    if (
        isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def find_imports(pkg: Path) -> list[Import]:
    """Every import among the package's own modules, in file and line order."""
    modules = find_modules(pkg)
    found = []
    for module, file in modules.items():
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
        for node in sorted(ast.walk(tree), key=lambda n: getattr(n, "lineno", 0)):
            for name in _named(node, module, file.name == "__init__.py"):
                parts = name.split(".")  # the longest prefix that is a module: X.n, else X
                names = (".".join(parts[:i]) for i in range(len(parts), 0, -1))
                target = next((n for n in names if n in modules), module)
                where = f"{file.relative_to(pkg.parent.parent).as_posix()}:{node.lineno}"
                if target != module and Import(module, target, where) not in found:
                    found.append(Import(module, target, where))
    return found


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan: the components of more than one module, i.e. the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or w != v:
                w = stack.pop()
                component.add(w)
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_cycles(imports: list[Import]) -> list[str]:
    """Each cycle as its modules, then one import (the first in its file) per edge inside it."""
    first: dict[tuple[str, str], Import] = {}
    for imp in imports:
        first.setdefault((imp.source, imp.target), imp)
    graph: dict[str, set[str]] = {}
    for source, target in first:
        graph.setdefault(source, set()).add(target)
    problems = []
    for component in _strongly_connected(graph):
        problems.append("cycle: " + " <-> ".join(sorted(component)))
        for (source, target), imp in sorted(first.items()):
            if source in component and target in component:
                problems.append(f"  {imp.where}: {source} imports {target}")
    return problems


def _layer_ranks(pkg: Path, layers: list[tuple[str, list[str]]]) -> tuple[dict, list[str]]:
    """Each module's layer ranks (one, if the list is honest), and the entries as module names."""
    entries = [
        (pkg.name if name == "__init__" else f"{pkg.name}.{name}", rank)
        for rank, (_, names) in enumerate(layers)
        for name in names
    ]

    def covers(entry: str, module: str) -> bool:  # a package, unless the list splits it
        split = any(other.startswith(entry + ".") for other, _ in entries)
        return module == entry or (module.startswith(entry + ".") and not split)

    ranks = {m: [r for e, r in entries if covers(e, m)] for m in find_modules(pkg)}
    return ranks, [entry for entry, _ in entries]


def unlisted_modules(pkg: Path, layers: list[tuple[str, list[str]]]) -> list[str]:
    """Modules covered by no entry or by several, and entries naming no module."""
    ranks, entries = _layer_ranks(pkg, layers)
    problems = [
        f"{module} is in {len(r) or 'no'} layer entries"
        for module, r in ranks.items()
        if len(r) != 1
    ]
    return problems + [f"{e} is listed but is no module" for e in entries if e not in ranks]


def upward_imports(pkg: Path, layers: list[tuple[str, list[str]]]) -> list[str]:
    """Each import (file:line) of a module in a higher layer than the importer's."""
    ranks, _ = _layer_ranks(pkg, layers)
    problems = []
    for imp in find_imports(pkg):
        low, high = max(ranks[imp.source], default=-1), max(ranks[imp.target], default=-1)
        if min(low, high) >= 0 and high > low:
            problems.append(
                f"{imp.where}: {imp.source} (layer '{layers[low][0]}') imports {imp.target}"
                f" (layer '{layers[high][0]}'), a higher layer"
            )
    return problems


def test_every_module_is_in_exactly_one_layer():
    problems = unlisted_modules(SRC, LAYERS)
    assert not problems, "fix LAYERS in tests/test_layering.py:\n" + "\n".join(problems)


def test_no_import_cycles():
    problems = import_cycles(find_imports(SRC))
    assert not problems, "import cycles in src/dcgan:\n" + "\n".join(problems)


def test_no_import_runs_against_the_layer_order():
    problems = upward_imports(SRC, LAYERS)
    assert not problems, "imports against LAYERS:\n" + "\n".join(problems)


# The mechanism, on small packages written for the purpose: each check can fail.


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "src" / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text, encoding="utf-8")
    return pkg


def test_relative_imports_resolve_per_package(tmp_path):
    pkg = _package(
        tmp_path,
        {
            "top.py": "def thing(): pass\n",
            "sub/__init__.py": "from . import x\n",
            "sub/x.py": "from .. import top\nfrom ..top import thing\n",
            "sub/deep/__init__.py": "",
            "sub/deep/y.py": "from ...top import thing\nfrom .. import x, helper\n",
            "z.py": "import importlib\nimportlib.import_module('pkg.sub.deep.y')\n",
        },
    )
    assert sorted(find_imports(pkg)) == [
        ("pkg.sub", "pkg.sub.x", "src/pkg/sub/__init__.py:1"),
        ("pkg.sub.deep.y", "pkg.sub", "src/pkg/sub/deep/y.py:2"),  # helper: not a module
        ("pkg.sub.deep.y", "pkg.sub.x", "src/pkg/sub/deep/y.py:2"),
        ("pkg.sub.deep.y", "pkg.top", "src/pkg/sub/deep/y.py:1"),
        ("pkg.sub.x", "pkg.top", "src/pkg/sub/x.py:1"),
        ("pkg.sub.x", "pkg.top", "src/pkg/sub/x.py:2"),
        ("pkg.z", "pkg.sub.deep.y", "src/pkg/z.py:2"),
    ]


def test_a_cycle_through_an_in_function_import_is_named(tmp_path):
    pkg = _package(
        tmp_path,
        {
            "a.py": "import os\nfrom . import b\n",
            "b.py": "from .c import f\n",
            "c.py": "def f():\n    from .a import g\n",
        },
    )
    assert import_cycles(find_imports(pkg)) == [
        "cycle: pkg.a <-> pkg.b <-> pkg.c",
        "  src/pkg/a.py:2: pkg.a imports pkg.b",
        "  src/pkg/b.py:1: pkg.b imports pkg.c",
        "  src/pkg/c.py:2: pkg.c imports pkg.a",
    ]


def test_an_upward_import_is_named_and_downward_ones_pass(tmp_path):
    layers = [("low", ["low", "sub"]), ("high", ["high", "__init__"])]
    files = {
        "low.py": "import pkg.sub.leaf\n\ndef f():\n    from . import high\n",
        "sub/__init__.py": "",
        "sub/leaf.py": "from ..high import run\n",
        "high.py": "from .low import f\n\ndef run():\n    pass\n",
    }
    pkg = _package(tmp_path, files)
    assert unlisted_modules(pkg, layers) == []
    assert upward_imports(pkg, layers) == [
        "src/pkg/low.py:4: pkg.low (layer 'low') imports pkg.high (layer 'high'), a higher layer",
        "src/pkg/sub/leaf.py:1: pkg.sub.leaf (layer 'low') imports pkg.high (layer 'high'),"
        " a higher layer",
    ]
    assert import_cycles(find_imports(pkg)) == [
        "cycle: pkg.high <-> pkg.low <-> pkg.sub.leaf",
        "  src/pkg/high.py:1: pkg.high imports pkg.low",
        "  src/pkg/low.py:4: pkg.low imports pkg.high",
        "  src/pkg/low.py:1: pkg.low imports pkg.sub.leaf",
        "  src/pkg/sub/leaf.py:1: pkg.sub.leaf imports pkg.high",
    ]


def test_the_layer_list_must_name_every_module_once(tmp_path):
    pkg = _package(tmp_path, {"a.py": "", "b.py": "", "sub/__init__.py": "", "sub/c.py": ""})
    layers = [("one", ["a", "sub", "gone"]), ("two", ["a", "__init__"])]
    assert unlisted_modules(pkg, layers) == [
        "pkg.a is in 2 layer entries",
        "pkg.b is in no layer entries",
        "pkg.gone is listed but is no module",
    ]
    split = [("one", ["a", "b", "sub"]), ("two", ["sub.c", "__init__"])]  # sub: its __init__ only
    assert unlisted_modules(pkg, split) == []
