"""Training speed before and after a change of the core: `bench_train.py --sections compare` run
alternately from an old checkout and this one, in one benchmark run (issue 23's speed check).

    python bench/bench_redesign.py --old /work/legacy [--pairs 3] [--log DIR] \\
        [-- --threads 2 --rounds 3 --steps 3 --batches 64,128]

Each run is a fresh process of the tree's own `bench/bench_train.py` with PYTHONPATH=TREE/src
(checked: `dcgan` must import from that tree), old, new, old, new, ... (--pairs of them), so
drifts in machine load hit both alike. The arguments after `--` go to every run, with
`--sections compare` and `--threads 2` unless given. Prints, for each contestant of each race,
the median img/s over the old runs and over the new runs, and new/old: the median of the
per-pair ratios. The reference (pytorch/examples, the same code in both trees) is the control:
its new/old shows how much the machine alone moved between runs. A second table divides that
out: each contestant's ratio to the reference within its own process (bench_train's "ratio",
the median of per-round ratios), old against new. --log keeps each run's output and results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
DEFAULTS = {"--sections": "compare", "--threads": "2"}


def _parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", type=Path, required=True, help="the old checkout's root")
    p.add_argument("--new", type=Path, default=HERE, help="the new checkout's root (this one)")
    p.add_argument("--pairs", type=int, default=3, help="old/new process pairs")
    p.add_argument("--log", type=Path, help="keep each run's output here")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args(argv)
    for flag, value in DEFAULTS.items():
        if flag not in extra:
            extra += [flag, value]
    return args, extra


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree / "src")}


def check_tree(python: str, tree: Path) -> str:
    """The tree's commit; exits when `dcgan` would not import from tree/src."""
    code = "import dcgan; print(dcgan.__file__)"
    where = subprocess.run(
        [python, "-c", code], env=_env(tree), capture_output=True, text=True, check=True
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to((tree / "src").resolve()):
        sys.exit(f"with PYTHONPATH={tree / 'src'}, dcgan imports from {where}")
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.split()[1::2]
    return f"{commit or '?'}" + (f", changed in src: {' '.join(dirty)}" if dirty else "")


def run_once(python: str, tree: Path, extra: list[str], out: Path, log: Path | None) -> dict:
    cmd = [python, str(tree / "bench" / "bench_train.py"), *extra, "--json", str(out)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(tree), capture_output=True, text=True)
    if log is not None:
        log.with_suffix(".txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    results = json.loads(out.read_text())
    results["_seconds"] = time.perf_counter() - started
    return results


def main(argv=None) -> int:
    args, extra = _parse_args(argv)
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    for side, tree in trees.items():
        print(f"{side}: {tree} at {check_tree(args.python, tree)}", flush=True)
    sys.path.insert(0, str(HERE / "src"))
    from dcgan.perf import cpu_kind

    print(f"{cpu_kind()}; bench_train.py {' '.join(extra)}; {args.pairs} pairs", flush=True)
    if args.log:
        args.log.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.pairs):
            for side, tree in trees.items():
                log = args.log / f"{side}{k}" if args.log else None
                out = log.with_suffix(".json") if log else Path(tmp, f"{side}{k}.json")
                r = run_once(args.python, tree, extra, out, log)
                runs[side].append(r)
                print(
                    f"pair {k} {side}: {r['_seconds']:.0f} s, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    report(runs)
    return 0


def report(runs: dict[str, list[dict]]) -> None:
    for kind, title, fmt in (
        ("img/s", "img/s", "{:.1f}"),
        ("ratio", "x the reference in its process", "{:.3f}"),
    ):
        print(f"\n| race | contestant | old {title} | new {title} | new/old | per pair |")
        print("| --- | --- | ---: | ---: | ---: | --- |")
        for key in runs["old"][0]:
            if not key.endswith("|" + kind):
                continue
            race, name, _ = key.split("|")
            old = [r[key] for r in runs["old"]]
            new = [r[key] for r in runs["new"]]
            pairs = [b / a for a, b in zip(old, new)]
            print(
                f"| {race} | {name} | {fmt.format(statistics.median(old))} | "
                f"{fmt.format(statistics.median(new))} | {statistics.median(pairs):.3f}x | "
                f"{' '.join(f'{x:.3f}' for x in pairs)} |"
            )


if __name__ == "__main__":
    raise SystemExit(main())
