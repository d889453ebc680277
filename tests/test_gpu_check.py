"""bench/gpu_check.sh must not rot unseen: it runs only on a lent GPU, rarely, with no second
try. It is valid bash, and every command line it would run, on CUDA and in its CPU dry run (as
`LIST=1` prints them), is one that bench_train.py's and bench_ddp.py's own argparse accept, with
sections that exist, and pytest selections that pick tests of tests/test_cuda.py. Nothing is run.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _commands(dry_run: bool) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("NGPU", "PYTHON", "SUMMARY", "DATA")}
    env |= {"LIST": "1", "DRY_RUN": "1" if dry_run else "0"}
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return [shlex.split(line) for line in proc.stdout.splitlines() if line.strip()]


def _function(path: Path, name: str):
    """A top-level function of a bench script, run alone (the scripts parse sys.argv and import
    torch when imported); it may use argparse and the module's docstring and constants."""
    tree = ast.parse(path.read_text())
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    assert node is not None, f"{path.name} has no {name}()"
    namespace = {"argparse": argparse, "__doc__": ast.get_docstring(tree), "FOLDER": "folder"}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def _section_names() -> set[str]:
    tree = ast.parse((ROOT / "bench" / "bench_train.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "SECTIONS"
        ]:
            return {k.value for k in node.value.keys}
    raise AssertionError("bench_train.py has no SECTIONS")


PARSERS = {
    "bench_train.py": _function(ROOT / "bench" / "bench_train.py", "_parse_args"),
    "bench_ddp.py": _function(ROOT / "bench" / "bench_ddp.py", "_parse_args"),
}


def _parse(script: str, argv: list[str]) -> argparse.Namespace:
    try:
        return PARSERS[script](argv)
    except SystemExit as e:
        pytest.fail(f"{script} {shlex.join(argv)}: its argparse refused this (exit {e.code})")


def test_the_script_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_parsers_refuse_what_they_do_not_know():
    # the check below has teeth: a flag the scripts do not define is refused
    for script in PARSERS:
        with pytest.raises(SystemExit):
            PARSERS[script](["--no-such-flag", "1"])
    with pytest.raises(SystemExit):  # bench_ddp: 64 images cannot split over 3 ranks
        PARSERS["bench_ddp.py"](["--nproc", "3", "--batch-size", "64"])


@pytest.mark.parametrize("dry_run", [False, True], ids=["cuda", "dry-run"])
def test_every_benchmark_line_parses(dry_run):
    device = "cpu" if dry_run else "cuda"
    seen = {"bench_train.py": 0, "bench_ddp.py": 0}
    for command in _commands(dry_run):
        script = next((Path(w).name for w in command if Path(w).name in PARSERS), None)
        if script is None:
            continue
        seen[script] += 1
        argv = command[[Path(w).name for w in command].index(script) + 1 :]
        args = _parse(script, argv)
        assert args.device == device, command
        if script == "bench_train.py":
            assert set(args.sections.split(",")) <= _section_names(), command
            assert all(int(b) > 0 for b in args.batches.split(",") + args.sizes_batches.split(","))
            assert args.dry_run == dry_run, command
    # compare/sizes/generate and compile; DDP at 2 and at all GPUs (LIST=1 assumes 3)
    assert seen == {"bench_train.py": 2, "bench_ddp.py": 2}, seen


@pytest.mark.parametrize("dry_run", [False, True], ids=["cuda", "dry-run"])
def test_every_pytest_line_selects_cuda_tests(dry_run):
    source = (ROOT / "tests" / "test_cuda.py").read_text()
    tests = re.findall(r"^def (test_\w+)", source, re.M)
    markers = (ROOT / "pyproject.toml").read_text()
    runs = [c for c in _commands(dry_run) if "pytest" in c]
    assert len(runs) == 2, runs  # the one-GPU tests, then the 2-GPU test
    for command in runs:
        assert "tests/test_cuda.py" in command and (ROOT / "tests" / "test_cuda.py").is_file()
        marker = command[command.index("-m", command.index("pytest")) + 1]
        assert f'"{marker}: ' in markers, f"marker {marker} is not declared in pyproject.toml"
        for word in command[: command.index("-m")]:  # env NAME=value ...: names the tests read
            if "=" in word:
                assert f'"{word.split("=")[0]}"' in source, f"test_cuda.py never reads {word}"
        expr = command[command.index("-k") + 1]
        negated, word = expr.startswith("not "), expr.removeprefix("not ")
        assert any((word in t) != negated for t in tests), f"-k {expr!r} selects no test"
