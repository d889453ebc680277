"""Process-wide speed settings for CPU training that torch does not make: OpenMP's wait policy,
glibc's malloc policy, and the thread count under a competing load (ThreadGovernor).

Imports no torch, so the CLI can call it before torch is loaded (libgomp reads its environment
once, when torch loads it).
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable


def openmp_env() -> bool:
    """With DCGAN_OMP_POLICY=passive, let OpenMP threads that wait at a parallel region's barrier
    sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE), unless the user set a policy.

    torch's CPU kernels run dozens of short parallel regions per step, and libgomp keeps a
    waiting thread spinning; when another process wants a core, the spinning thread takes it
    from the very thread it waits for. Measured on this 2-core machine (bench/bench_load.py,
    bench/README.md "Training under load"): with one busy process the default keeps 22-25% of
    its idle speed at 28 px and passive waiting 63%, but idle passive waiting runs at 0.62x, so
    it is opt-in, not the default. Must run before torch is imported; returns whether it set
    the policy."""
    if os.environ.get("DCGAN_OMP_POLICY") != "passive" or "torch" in sys.modules:
        return False
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


# mallopt parameters from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def tune_malloc() -> bool:
    """Keep freed memory inside the process instead of handing it back to the kernel.

    glibc serves blocks above its mmap threshold (128 KiB, adapting up to 32 MiB) with fresh
    mmaps and trims the heap top when free: every training step then allocates its activations
    from zeroed pages again, one page fault per 4 KiB. Turning off mmap-backed blocks and heap
    trimming makes later steps reuse the same, already mapped memory; the process keeps its peak
    size. Returns True when applied; False (doing nothing) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p  # only glibc has it (not musl)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


# /proc/cpuinfo flags worth naming in a benchmark's header: they decide oneDNN's kernels
_NAMED_FLAGS = (
    ("avx512f", "AVX-512"),
    ("avx512_bf16", "AVX512-BF16"),
    ("avx512_fp16", "AVX512-FP16"),
    ("amx_bf16", "AMX-BF16"),
)


def cpu_kind(cpuinfo: str = "/proc/cpuinfo") -> str:
    """One line naming this CPU for a benchmark table: model name, vendor, family and model
    (Zen 4 is AMD family 25, Zen 5 family 26), the vector extensions oneDNN chooses kernels by,
    and the cores this process may use. Falls back to platform's answer off Linux."""
    import platform

    fields = _cpu_fields(cpuinfo)
    name = fields.get("model name") or platform.processor() or platform.machine()
    labels = (("vendor_id", ""), ("cpu family", "family "), ("model", "model "))
    ident = " ".join(label + fields[key] for key, label in labels if key in fields)
    flags = set(fields.get("flags", "").split())
    named = [label for flag, label in _NAMED_FLAGS if flag in flags]
    parts = [name + (f" ({ident})" if ident else "")]
    if named:
        parts.append(", ".join(named))
    parts.append(f"{len(affinity_cpus())} cores")
    quota = cpu_quota()
    if quota:
        parts.append(f"CPU quota {quota:g}")
    return ", ".join(parts)


def amx_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has AMX tiles for bf16 (Sapphire Rapids and later Xeons) that the kernel
    enables: Linux lists the amx_bf16 flag only then. On such CPUs oneDNN runs bf16
    convolutions on AMX, and `--precision auto` picks bf16 (bench/README.md, "bf16 on AMX")."""
    return "amx_bf16" in _cpu_fields(cpuinfo).get("flags", "").split()


def _cpu_fields(cpuinfo: str) -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo as a dict ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def affinity_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask; all CPUs where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def available_cpus() -> int:
    """How many CPUs this process can keep busy: its affinity mask, capped by its cgroup's CPU
    quota rounded up (`docker run --cpus 1.5` -> 2). The count to start threads or worker
    processes from: torch and os.cpu_count() see every core of the host, not the quota."""
    quota = cpu_quota()
    cpus = len(affinity_cpus())
    return min(cpus, max(1, math.ceil(quota - 1e-9))) if quota else cpus


def cpu_quota(mountinfo: str = "/proc/self/mountinfo", cgroup: str = "/proc/self/cgroup"):
    """The CPU time this process's control group may use, in CPUs (cgroup v2 `cpu.max`, v1
    `cpu.cfs_quota_us / cpu.cfs_period_us`; the tightest on the way up to the hierarchy's
    root, since a parent's limit binds its children), or None where there is none (or no
    cgroups: not Linux). Containers set it: `docker run --cpus`, Kubernetes' CPU limits,
    systemd's CPUQuota. With more threads than the quota, the kernel stops every thread of the
    process for the rest of each period once the quota is spent (bench/README.md, "A CPU
    quota")."""
    limits = [_tightest(*group) for group in cpu_cgroups(mountinfo, cgroup)]
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def cpu_cgroups(
    mountinfo: str = "/proc/self/mountinfo", cgroup: str = "/proc/self/cgroup"
) -> list[tuple[str, str, bool]]:
    """Where this process's CPU limits can be: (mount point, its group's path under the mount,
    is cgroup v2) for each mounted cgroup v2 hierarchy and cgroup v1 `cpu` hierarchy that holds
    it; [] without cgroups."""
    try:
        with open(cgroup, encoding="utf-8") as f:
            memberships = [line.rstrip("\n").split(":", 2) for line in f]
        with open(mountinfo, encoding="utf-8") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return []
    found = []
    for fields in mounts:
        # id parent major:minor root mount-point options [optional...] - type source super-options
        sep = fields.index("-", 6) if "-" in fields[6:] else len(fields)
        if len(fields) < sep + 4:
            continue
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        root, point = _unescape(fields[3]), _unescape(fields[4])
        for entry in memberships:
            if len(entry) != 3:
                continue
            _, controllers, path = entry
            v2 = fstype == "cgroup2" and controllers == ""
            v1 = fstype == "cgroup" and "cpu" in controllers.split(",") and "cpu" in options
            if not (v1 or v2):
                continue
            rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
            if rel == ".." or rel.startswith("../"):
                continue  # this mount shows another part of the hierarchy
            found.append((point, rel, v2))
    return found


def _tightest(mount: str, rel: str, v2: bool) -> float | None:
    """The smallest CPU limit from the group mount/rel up to the mount's root."""
    found = []
    parts = [p for p in rel.split("/") if p and p != "."]
    for depth in range(len(parts), -1, -1):
        group = os.path.join(mount, *parts[:depth])
        limit = _read_v2(group) if v2 else _read_v1(group)
        if limit is not None:
            found.append(limit)
    return min(found) if found else None


def _read_v2(group: str) -> float | None:
    try:  # "max 100000" (no limit) or "150000 100000": quota and period in microseconds
        with open(os.path.join(group, "cpu.max"), encoding="utf-8") as f:
            quota, _, period = f.read().strip().partition(" ")
        if quota == "max":
            return None
        quota, period = int(quota), int(period or 100000)
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _read_v1(group: str) -> float | None:
    try:  # quota -1 is no limit
        with open(os.path.join(group, "cpu.cfs_quota_us"), encoding="utf-8") as f:
            quota = int(f.read().strip())
        with open(os.path.join(group, "cpu.cfs_period_us"), encoding="utf-8") as f:
            period = int(f.read().strip())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _unescape(field: str) -> str:
    """mountinfo writes a space, tab, newline or backslash in a path as octal (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


class SystemLoad:
    """How many of this process's CPUs other processes kept busy since the previous reading, in
    cores, from the kernel's per-CPU counters (/proc/stat) minus this process's own CPU time
    (every thread's, spin-waiting included). Linux only: `others()` is None elsewhere."""

    def __init__(self, cpus: list[int] | None = None, stat: str = "/proc/stat"):
        self._cpus = {f"cpu{c}" for c in (cpus if cpus is not None else affinity_cpus())}
        self._stat = stat
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        try:
            with open(self._stat) as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        busy = 0
        for line in lines:
            fields = line.split()
            if fields and fields[0] in self._cpus:
                # user nice system idle iowait irq softirq steal: all but idle and iowait
                v = [int(x) for x in fields[1:9]]
                busy += sum(v) - v[3] - v[4]
        return time.perf_counter(), busy / self._tick, time.process_time()

    def others(self) -> float | None:
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[0] <= last[0]:
            return None
        wall, busy, ours = (a - b for a, b in zip(now, last))
        return max(0.0, (busy - ours) / wall)


class ThreadGovernor:
    """Adapts the number of CPU threads a training uses to the cores other processes leave it.

    torch's CPU kernels run dozens of short parallel regions per step, and each ends at a
    barrier where libgomp's threads spin. When another process takes a core, the thread that
    the others wait for is parked behind it while they spin: on 2 cores with one busy process a
    2-thread training keeps about a quarter of its idle speed, a 1-thread one most of it
    (bench/README.md, "Training under load"). So every `interval` seconds (and `min_steps`
    steps) the governor reads how many cores others used (SystemLoad); when that leaves a
    different number of cores than the threads in use (rounded, between 1 and the starting
    count), it tries that number for one window and keeps it only if the median step time
    fell; a refused count is not tried again for `retry` seconds. On an idle machine it never
    changes anything, so an idle run stays bit-identical to a run with the count fixed.

    `set_threads(n)` applies a count (torch.set_num_threads). `after_step(seconds)` takes the
    time of one training step (training alone) and returns a one-line message when it changed
    the count for good, else None."""

    def __init__(
        self,
        threads: int,
        set_threads: Callable[[int], None],
        *,
        load: SystemLoad | None = None,
        cpus: int | None = None,
        interval: float = 2.0,
        min_steps: int = 5,
        retry: float = 60.0,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.max = self.current = threads
        self._set_threads = set_threads
        self._load = load or SystemLoad()
        self._cpus = cpus or len(affinity_cpus())
        self._interval, self._min_steps, self._retry, self._clock = (
            interval,
            min_steps,
            retry,
            clock,
        )
        self._times: list[float] = []
        self._window = clock()
        self._trial: tuple[float, int, float] | None = (
            None  # (baseline median, count before, others)
        )
        self._refused: dict[int, float] = {}

    def wanted(self, others: float) -> int:
        return max(1, min(self.max, round(self._cpus - others)))

    def after_step(self, seconds: float) -> str | None:
        self._times.append(seconds)
        now = self._clock()
        if len(self._times) < self._min_steps or now - self._window < self._interval:
            return None
        times, self._times, self._window = self._times, [], now
        others = self._load.others()
        if self._trial is not None:  # the window just measured ran at the candidate count
            baseline, before, seen = self._trial
            self._trial = None
            median = statistics.median(times[1:])  # the first step after a change warms up
            if median < baseline:
                return self._kept(before, baseline / median, seen)
            self._refused[self.current] = now + self._retry
            self._apply(before)
            return None
        if others is None:
            return None
        want = self.wanted(others)
        if want == self.current or self._refused.get(want, 0.0) > now:
            return None
        self._trial = (statistics.median(times), self.current, others)
        self._apply(want)
        return None

    def _apply(self, n: int) -> None:
        self._set_threads(n)
        self.current = n

    def _kept(self, before: int, speedup: float, others: float) -> str:
        n = self.current
        plural = lambda k: f"{k} thread{'s' if k != 1 else ''}"
        why = (
            f"other processes are using {others:.1f} of {self._cpus} CPUs"
            if n < before
            else f"CPUs were freed ({others:.1f} of {self._cpus} busy elsewhere)"
        )
        return (
            f"{why}: training on {plural(n)} now, {speedup:.2f}x the speed of {plural(before)} "
            "(--threads N fixes the count)"
        )


def choose_threads(engine_threads, threads, device, world: int, say=lambda message: None):
    """A run's CPU threads: apply a fixed count, or return the ThreadGovernor that adapts it
    ("auto"), or None. `engine_threads` is the engine's cpu_threads(count=None).

    "auto" on a CPU starts from torch's count capped by the CPUs a cgroup quota grants
    (available_cpus), and says so in one line when it caps; a GPU, a launcher that divided the
    cores (world > 1) or a user's OMP_NUM_THREADS keep their count."""
    from .errors import UsageError

    if threads != "auto":
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4096:
            raise UsageError(f"--threads must be auto or a whole number from 1, not {threads!r}")
        if engine_threads(threads) is None:
            raise UsageError("--threads applies to the torch engine; NumPy chooses its own")
        return None
    if str(device) != "cpu" or world > 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    count = engine_threads()
    if count is None:
        return None
    limit, cap = cpu_quota(), available_cpus()
    if limit and count > cap:  # (a count above the affinity mask alone is the user's choice)
        cpus, threads_word = f"CPU{'s' if limit != 1 else ''}", f"thread{'s' if cap != 1 else ''}"
        say(
            f"this process may use {limit:g} {cpus} (its cgroup's CPU quota): training on {cap} "
            f"{threads_word}, not {count} (--threads N fixes the count)"
        )
        count = engine_threads(cap)
    return ThreadGovernor(count, engine_threads)
