"""Training speed under a competing load: idle, with 1 and with 2 busy single-threaded processes
(`python3 -c "while True: pass"`), for each OpenMP policy, interleaved, printing the share of
idle speed each keeps. Also two `dcgan train` runs at once.

    python bench/bench_load.py --rounds 2                # 28 px default run, 300 steps
    python bench/bench_load.py --size 64 --steps 40      # the 64 px net on synthetic images
    sudo python bench/bench_load.py --loads 0 --quotas 1,1.5  # inside a cgroup CPU quota too

Policies: "dcgan" (what `dcgan train` does by default: --threads auto, the thread governor),
"fixed" (--threads = the cores: the count fixed, libgomp's spinning wait, what dcgan did before
the governor and what a bare torch program gets), "passive" (fixed, with
DCGAN_OMP_POLICY=passive), "spin30k" (fixed, GOMP_SPINCOUNT=30000), "threads1" (--threads 1).
img/s is the median of stats.jsonl's img_per_s (training alone) after the first interval.

--quotas runs every policy again inside a control group limited to that many CPUs (as
`docker run --cpus` does; needs root and cgroup v2's cpu controller or v1's cpu hierarchy),
with no busy process: "fixed" is then what torch does by itself (one thread per core, blind to
the quota), "dcgan" starts within the quota (perf.available_cpus).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dcgan.perf import cpu_cgroups, cpu_kind  # noqa: E402 (imports no torch)

CORES = str(len(os.sched_getaffinity(0)))
POLICIES = {  # name: (environment, train arguments)
    "dcgan": ({}, []),
    "fixed": ({"DCGAN_OMP_POLICY": "off"}, ["--threads", CORES]),
    "threads1": ({"DCGAN_OMP_POLICY": "off"}, ["--threads", "1"]),
    "passive": ({"DCGAN_OMP_POLICY": "passive"}, ["--threads", CORES]),
    "spin30k": ({"DCGAN_OMP_POLICY": "off", "GOMP_SPINCOUNT": "30000"}, ["--threads", CORES]),
}


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def train_cmd(args, out: Path, name: str, policy: str) -> list[str]:
    cmd = [sys.executable, "-m", "dcgan", "train", "--steps", str(args.steps), "--no-progress"]
    cmd += ["--runs-dir", str(out), "--name", name, "--log-every", str(args.log_every)]
    cmd += ["--sample-every", "100000", "--checkpoint-every", "100000", "--no-report"]
    if args.size != 28:
        cmd += ["--data", args.folder, "--image-size", str(args.size)]
    return cmd + POLICIES[policy][1]


def batch_size(out: Path, name: str) -> int:
    return json.loads((out / name / "config.json").read_text())["train"]["batch_size"]


def rate(out: Path, name: str) -> float:
    lines = [json.loads(x) for x in (out / name / "stats.jsonl").read_text().splitlines()]
    rates = [r["img_per_s"] for r in lines if "img_per_s" in r][1:]
    return statistics.median(rates)


class Quota:
    """A control group that limits its processes to `cpus` CPUs (None: no limit): cgroup v2's
    cpu.max, else cgroup v1's cpu.cfs_quota_us. Needs root; `error` says why not otherwise."""

    PERIOD = 100_000

    def __init__(self, name: str = "dcgan-bench-load"):
        self.path, self.v2, self.error = (
            None,
            False,
            "no cgroup v2 cpu controller or v1 cpu hierarchy",
        )
        for mount, _, v2 in cpu_cgroups():  # a child of the hierarchy's root: v2 allows that
            mount = Path(mount)
            try:
                if v2:
                    if "cpu" not in (mount / "cgroup.controllers").read_text().split():
                        continue
                    (mount / "cgroup.subtree_control").write_text("+cpu")
                (mount / name).mkdir(exist_ok=True)
            except OSError as e:
                self.error = f"cannot make a cgroup under {mount}: {e}"
                continue
            self.path, self.v2, self.error = mount / name, v2, None
            return

    def set(self, cpus: float | None) -> None:
        quota = -1 if cpus is None else round(cpus * self.PERIOD)
        if self.v2:
            text = "max" if quota < 0 else str(quota)
            (self.path / "cpu.max").write_text(f"{text} {self.PERIOD}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def enter(self) -> None:  # a child's preexec_fn: the child joins the group before it execs
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def seen(self) -> str:
        """What a process in the group reads as its quota (dcgan.perf.cpu_quota)."""
        code = "import sys; sys.path.insert(0, 'src'); from dcgan.perf import cpu_quota; print(cpu_quota())"
        root = Path(__file__).resolve().parents[1]
        return subprocess.run(
            [sys.executable, "-c", code], cwd=root, preexec_fn=self.enter, capture_output=True,
            text=True, check=True,
        ).stdout.strip()  # fmt: skip

    def close(self) -> None:
        if self.path is not None:
            self.set(None)
            self.path.rmdir()


def run_one(args, policy: str, load: int, out: Path, name: str, quota=None) -> float:
    env = {**os.environ, **POLICIES[policy][0], "DCGAN_HOME": str(out / "home")}
    hogs = busy(load)
    try:
        time.sleep(0.5)
        subprocess.run(
            train_cmd(args, out, name, policy), env=env, check=True, capture_output=True,
            preexec_fn=quota.enter if quota else None,
        )  # fmt: skip
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    return rate(out, name)


def two_at_once(args, policy: str, out: Path, tag: str) -> float:
    env = {**os.environ, **POLICIES[policy][0], "DCGAN_HOME": str(out / "home")}
    names = [f"{tag}-a", f"{tag}-b"]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(train_cmd(args, out, n, policy), env=env, stderr=subprocess.DEVNULL)
        for n in names
    ]
    for p in procs:
        p.wait()
    return time.perf_counter() - started


def make_folder(path: Path, n: int = 2048) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path / f"{i}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=28, choices=(28, 64))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--loads", default="0,1,2")
    p.add_argument("--policies", default="dcgan,fixed,threads1")
    p.add_argument("--concurrent", action="store_true", help="also two runs at once")
    p.add_argument("--quotas", default="", help="CPU quotas to run the policies in, e.g. 1,1.5")
    args = p.parse_args()
    print(f"{cpu_kind()}, {args.size} px, loads {args.loads}", flush=True)
    out = Path(tempfile.mkdtemp(prefix="bench_load-"))
    if args.size != 28:
        args.folder = str(out / "pics")
        make_folder(Path(args.folder))
    policies, loads = args.policies.split(","), [int(x) for x in args.loads.split(",")]
    results: dict[tuple[str, int], list[float]] = {}
    k = 0
    for r in range(args.rounds):  # interleaved, so drifts in the machine hit every cell alike
        for load in loads:
            for policy in policies:
                k += 1
                v = run_one(args, policy, load, out, f"r{k}")
                results.setdefault((policy, load), []).append(v)
                print(f"round {r} load {load} {policy:9s} {v:8.1f} img/s", flush=True)
    print(f"\n{args.size} px, {args.steps} steps, median img/s (share of the same policy's idle)")
    print("policy     " + "".join(f"  load {x:<12d}" for x in loads))
    for policy in policies:
        idle = statistics.median(results[(policy, 0)]) if 0 in loads else None
        cells = []
        for load in loads:
            v = statistics.median(results[(policy, load)])
            share = f" ({v / idle:4.0%})" if idle else ""
            cells.append(f"  {v:7.1f}{share:8s}")
        print(f"{policy:10s} " + "".join(cells))
    if 0 in loads and "fixed" in policies:
        base = statistics.median(results[("fixed", 0)])
        for policy in policies:
            print(f"idle {policy} / fixed: {statistics.median(results[(policy, 0)]) / base:.2f}x")
    if args.quotas:
        quotas(args, policies, out, results)
    if args.concurrent:
        batch = batch_size(out, "r1")  # the recipe's batch for this size (128 at 28 px)
        for policy in policies:
            solo = statistics.median(results[(policy, 0)])
            took = two_at_once(args, policy, out, f"two-{policy}")
            print(f"two runs at once, {policy}: {took:.0f} s for 2 x {args.steps} steps "
                  f"(alone: {args.steps * batch / solo:.0f} s of training each)")  # fmt: skip


def quotas(args, policies: list[str], out: Path, results: dict) -> None:
    """Each policy inside a cgroup CPU quota, no busy process, interleaved over rounds."""
    group = Quota()
    if group.error:
        print(f"\nno quota runs: {group.error}")
        return
    cpus = [float(x) for x in args.quotas.split(",")]
    rates: dict[tuple[str, float], list[float]] = {}
    try:
        for c in cpus:
            group.set(c)
            print(f"quota {c:g}: a process in the group reads cpu_quota() = {group.seen()}")
        for r in range(args.rounds):
            for c in cpus:
                group.set(c)
                for policy in policies:
                    v = run_one(args, policy, 0, out, f"q{r}-{c:g}-{policy}", group)
                    rates.setdefault((policy, c), []).append(v)
                    print(f"round {r} quota {c:g} {policy:9s} {v:8.1f} img/s", flush=True)
    finally:
        group.close()
    print(f"\n{args.size} px inside a CPU quota, median img/s (ratio to fixed, share of idle)")
    for c in cpus:
        base = statistics.median(rates[("fixed", c)]) if "fixed" in policies else None
        for policy in policies:
            v = statistics.median(rates[(policy, c)])
            idle = results.get((policy, 0))
            print(
                f"quota {c:<4g} {policy:10s} {v:8.1f}"
                + (f"  {v / base:4.2f}x fixed" if base else "")
                + (f"  {v / statistics.median(idle):4.0%} of idle" if idle else "")
            )


if __name__ == "__main__":
    main()
