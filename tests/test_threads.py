"""The thread governor (dcgan.perf.ThreadGovernor): fewer CPU threads while other processes take
cores, back up when they leave, and nothing at all on an idle machine. Driven by a fake clock and
a fake load, so no test depends on this machine's scheduler or times anything."""

from __future__ import annotations

import types

import numpy as np
import pytest

from conftest import tiny_config
from dcgan import loop, perf
from dcgan.engines import Solo
from dcgan.errors import UsageError


class FakeLoad:
    def __init__(self, others):
        self.value = others

    def others(self):
        return self.value


class Machine:
    """Steps whose time depends on the thread count and the load; one clock for everything."""

    def __init__(self, speed, others=0.0):
        self.speed = speed  # (threads, others rounded) -> seconds per step
        self.load = FakeLoad(others)
        self.now = 0.0
        self.applied = []

    def governor(self, threads=2, **kw):
        return perf.ThreadGovernor(
            threads, self.applied.append, load=self.load, cpus=2, clock=lambda: self.now, **kw
        )

    def run(self, gov, steps):
        notes = []
        for _ in range(steps):
            dt = self.speed[(gov.current, round(self.load.value))]
            self.now += dt
            note = gov.after_step(dt)
            if note:
                notes.append(note)
        return notes


# seconds per step measured in shape on 2 cores (bench/README.md): 2 threads are faster idle,
# far slower beside one busy process
SPEED = {(2, 0): 0.010, (1, 0): 0.015, (2, 1): 0.040, (1, 1): 0.016}


def test_an_idle_machine_never_changes_the_count():
    m = Machine(SPEED, others=0.1)
    gov = m.governor()
    assert m.run(gov, 5000) == []
    assert m.applied == [] and gov.current == 2


def test_a_busy_process_moves_training_to_one_thread_and_its_end_moves_it_back():
    m = Machine(SPEED, others=1.0)
    gov = m.governor()
    notes = m.run(gov, 2000)
    assert gov.current == 1 and m.applied == [1]
    assert len(notes) == 1 and "training on 1 thread now" in notes[0] and "2.50x" in notes[0]
    m.load.value = 0.0  # the other process ended
    notes = m.run(gov, 2000)
    assert gov.current == 2 and m.applied == [1, 2]
    assert "training on 2 threads now" in notes[0]


def test_a_count_that_is_not_faster_is_refused_and_retried_only_later():
    slow_one = {(2, 1): 0.010, (1, 1): 0.020}  # e.g. the other process is niced: 2 stays best
    m = Machine(slow_one, others=1.0)
    gov = m.governor(retry=60.0)
    assert m.run(gov, 2000) == []  # 20 s: one trial, refused
    assert gov.current == 2 and m.applied == [1, 2]
    m.run(gov, 5000)  # 50 s more: the trial is repeated once the 60 s are over
    assert m.applied == [1, 2, 1, 2]


def test_the_first_step_after_a_change_is_not_counted():
    m = Machine(SPEED, others=1.0)
    gov = m.governor(min_steps=3, interval=0.0)
    for dt in (0.04, 0.04, 0.04):  # a window at 2 threads
        gov.after_step(dt)
    assert gov.current == 1  # on trial
    for dt in (5.0, 0.016, 0.016):  # the first step at the new count warms up (say, a page-in)
        note = gov.after_step(dt)
    assert note and gov.current == 1


def test_wanted_counts_the_cores_others_leave():
    gov = perf.ThreadGovernor(16, lambda n: None, load=FakeLoad(0.0), cpus=16)
    assert [gov.wanted(x) for x in (0.0, 0.4, 0.6, 1.0, 3.2, 15.9, 40.0)] == [
        16,
        16,
        15,
        15,
        13,
        1,
        1,
    ]
    small = perf.ThreadGovernor(4, lambda n: None, load=FakeLoad(0.0), cpus=16)
    assert small.wanted(0.0) == 4  # never more than it started with


def test_system_load_reads_the_affinity_cpus_minus_this_process(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    tick = perf.os.sysconf("SC_CLK_TCK")

    def write(busy0, busy1, busy5):  # user nice system idle iowait irq softirq steal
        lines = ["cpu  1 2 3 4 5 6 7 8"]
        for cpu, busy in ((0, busy0), (1, busy1), (5, busy5)):
            lines.append(f"cpu{cpu} {busy} 0 0 1000 7 0 0 0 0 0")
        stat.write_text("\n".join(lines) + "\n")

    clock, cpu = [100.0], [10.0]
    monkeypatch.setattr(perf.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(perf.time, "process_time", lambda: cpu[0])
    write(0, 0, 0)
    load = perf.SystemLoad(cpus=[0, 1], stat=str(stat))
    clock[0] += 2.0  # 2 s: 3 core-seconds busy on cpu0+cpu1, 1 of them ours; cpu5 is not ours
    cpu[0] += 1.0
    write(2 * tick, 1 * tick, 50 * tick)
    assert load.others() == pytest.approx(1.0)
    assert perf.SystemLoad(stat=str(tmp_path / "missing")).others() is None


def test_the_loop_tells_the_governor_each_step_and_logs_the_count():
    config = tiny_config(steps=8, log_every=4, sample_every=100, checkpoint_every=100)
    state = types.SimpleNamespace(
        config=config, step=0, elapsed=0.0, extra={}, group=Solo(), sampler=None
    )
    seen, notes, logs = [], [], []

    class Gov:
        current = 2

        def after_step(self, seconds):
            seen.append(seconds)
            if len(seen) == 3:
                self.current = 1
                return "training on 1 thread now"
            return None

    engine = types.SimpleNamespace(
        feeder=lambda s, d: lambda idx: idx,
        train_step=lambda s, i: {"loss_d": 0.5},
        generate=lambda g, z, labels=None: np.zeros((1, 1, 28, 28), np.uint8),
    )
    hooks = loop.Hooks(on_log=logs.append, on_warning=notes.append, threads=Gov())
    assert loop.loop(engine, state, _Data(), hooks) == "done"
    assert len(seen) == 8 and all(s >= 0 for s in seen)
    assert notes == ["training on 1 thread now"]
    assert [r["threads"] for r in logs] == [1, 1]


class _Data:
    def __len__(self):
        return 400


def test_threads_option(monkeypatch):
    torch_engine = pytest.importorskip("dcgan.torch_engine")
    before = torch_engine.cpu_threads()
    try:
        assert perf.choose_threads(torch_engine.cpu_threads, 1, "cpu", 1) is None
        assert torch_engine.cpu_threads() == 1
        torch_engine.cpu_threads(before)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        gov = perf.choose_threads(torch_engine.cpu_threads, "auto", "cpu", 1)
        assert isinstance(gov, perf.ThreadGovernor) and gov.current == before
        assert perf.choose_threads(torch_engine.cpu_threads, "auto", "cuda:0", 1) is None
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user (or torchrun) chose
        assert perf.choose_threads(torch_engine.cpu_threads, "auto", "cpu", 1) is None
    finally:
        torch_engine.cpu_threads(before)
    from dcgan.numpy_engine import train as numpy_engine

    assert perf.choose_threads(numpy_engine.cpu_threads, "auto", "cpu", 1) is None
    for bad in (0, -1, "many", 2.5, True):
        with pytest.raises(UsageError, match="--threads"):
            perf.choose_threads(torch_engine.cpu_threads, bad, "cpu", 1)
    with pytest.raises(UsageError, match="torch engine"):
        perf.choose_threads(numpy_engine.cpu_threads, 2, "cpu", 1)


def test_cpu_kind_names_the_model_family_and_the_kernels_extensions(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: another block, not read\n"
    )
    monkeypatch.setattr(perf, "cpu_quota", lambda: None)
    kind = perf.cpu_kind(str(cpuinfo))
    assert kind.startswith("AMD EPYC 9R14 (AuthenticAMD family 25 model 17), AVX-512, AVX512-BF16,")
    assert "AMX" not in kind and "another" not in kind
    assert kind.endswith(f"{len(perf.affinity_cpus())} cores")
    # no /proc/cpuinfo (macOS, Windows): platform's name, still one line
    assert perf.cpu_kind(str(tmp_path / "missing")).endswith("cores")
    monkeypatch.setattr(perf, "cpu_quota", lambda: 1.5)  # a container's --cpus 1.5
    assert perf.cpu_kind(str(cpuinfo)).endswith("cores, CPU quota 1.5")


# ---------------------------------------------------------------------------------------------
# CPU quotas: a container's --cpus, read from cgroup files laid out as the kernel does


def _mountinfo(tmp_path, *mounts):
    """mountinfo lines for (root, mount point, fstype, super options)."""
    lines = [
        f"{30 + i} 1 0:{40 + i} {root} {point} rw,nosuid shared:{i} - {fstype} cgroup {opts}"
        for i, (root, point, fstype, opts) in enumerate(mounts)
    ]
    lines.insert(0, "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw")  # not a cgroup
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _cgroup(tmp_path, text):
    path = tmp_path / "cgroup"
    path.write_text(text)
    return str(path)


def test_cgroup_v2_quota_is_read_at_the_group_and_its_parents(tmp_path):
    mount = tmp_path / "sys fs cgroup"  # a space, written \040 in mountinfo
    group = mount / "user.slice" / "job"
    group.mkdir(parents=True)
    (group / "cpu.max").write_text("max 100000\n")  # no limit of its own...
    (mount / "user.slice" / "cpu.max").write_text("150000 100000\n")  # ...its parent's binds
    info = _mountinfo(tmp_path, ("/", str(mount).replace(" ", "\\040"), "cgroup2", "rw"))
    cg = _cgroup(tmp_path, "0::/user.slice/job\n")
    assert perf.cpu_quota(info, cg) == 1.5
    (group / "cpu.max").write_text("50000 100000\n")  # tighter than the parent
    assert perf.cpu_quota(info, cg) == 0.5
    (group / "cpu.max").write_text("max 100000\n")
    (mount / "user.slice" / "cpu.max").write_text("max 100000\n")
    assert perf.cpu_quota(info, cg) is None


def test_cgroup_v2_inside_a_container_and_a_mounted_subtree(tmp_path):
    # a container's namespace: the process sits at "/" and the mount shows its own group
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cpu.max").write_text("200000 100000\n")
    info = _mountinfo(tmp_path, ("/", str(mount), "cgroup2", "rw"))
    assert perf.cpu_quota(info, _cgroup(tmp_path, "0::/\n")) == 2.0
    # a bind mount of the subtree /kubepods/pod1 at `mount`: the path is taken relative to it
    (mount / "c1").mkdir()
    (mount / "c1" / "cpu.max").write_text("25000 50000\n")
    info = _mountinfo(tmp_path, ("/kubepods/pod1", str(mount), "cgroup2", "rw"))
    assert perf.cpu_quota(info, _cgroup(tmp_path, "0::/kubepods/pod1/c1\n")) == 0.5
    # a group outside the mounted subtree is not this mount's business
    assert perf.cpu_quota(info, _cgroup(tmp_path, "0::/other\n")) is None


def test_cgroup_v1_cpu_controller_quota_and_period(tmp_path):
    mount = tmp_path / "cpu,cpuacct"
    (mount / "docker" / "abc").mkdir(parents=True)
    for group, quota in (
        (mount, "-1"),
        (mount / "docker", "-1"),
        (mount / "docker" / "abc", "150000"),
    ):
        (group / "cpu.cfs_quota_us").write_text(quota + "\n")
        (group / "cpu.cfs_period_us").write_text("100000\n")
    info = _mountinfo(
        tmp_path,
        ("/", str(tmp_path / "memory"), "cgroup", "rw,memory"),  # another controller
        ("/", str(mount), "cgroup", "rw,cpu,cpuacct"),
        ("/", str(tmp_path / "unified"), "cgroup2", "rw"),  # hybrid: no cpu.max there
    )
    cg = _cgroup(tmp_path, "5:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert perf.cpu_quota(info, cg) == 1.5
    (mount / "docker" / "abc" / "cpu.cfs_quota_us").write_text("-1\n")
    assert perf.cpu_quota(info, cg) is None


def test_no_cgroups_or_unreadable_files_mean_no_quota(tmp_path):
    assert perf.cpu_quota(str(tmp_path / "none"), str(tmp_path / "none")) is None
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cpu.max").write_text("garbage\n")
    info = _mountinfo(tmp_path, ("/", str(mount), "cgroup2", "rw"))
    assert perf.cpu_quota(info, _cgroup(tmp_path, "0::/\n")) is None
    (mount / "cpu.max").write_text("0 100000\n")  # never a limit of zero CPUs
    assert perf.cpu_quota(info, _cgroup(tmp_path, "0::/\n")) is None


def test_available_cpus_rounds_the_quota_up_within_the_affinity_mask(monkeypatch):
    cores = len(perf.affinity_cpus())
    for quota, want in ((None, cores), (0.5, 1), (1.0, 1), (1.5, min(cores, 2)), (1000.0, cores)):
        monkeypatch.setattr(perf, "cpu_quota", lambda q=quota: q)
        assert perf.available_cpus() == want, quota


def test_auto_threads_start_within_the_quota_and_say_so(monkeypatch):
    torch_engine = pytest.importorskip("dcgan.torch_engine")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch_engine.cpu_threads()
    said = []
    try:
        torch_engine.cpu_threads(2)
        monkeypatch.setattr(perf, "cpu_quota", lambda: 1.0)
        gov = perf.choose_threads(torch_engine.cpu_threads, "auto", "cpu", 1, said.append)
        assert gov.current == gov.max == 1 and torch_engine.cpu_threads() == 1
        assert said == [
            "this process may use 1 CPU (its cgroup's CPU quota): training on 1 thread, not 2 "
            "(--threads N fixes the count)"
        ]
        gov = perf.choose_threads(torch_engine.cpu_threads, 2, "cpu", 1, said.append)
        assert gov is None and torch_engine.cpu_threads() == 2  # a fixed count is the user's
        monkeypatch.setattr(perf, "cpu_quota", lambda: None)
        torch_engine.cpu_threads(64)  # more than the cores, set by the user: no quota to cite
        gov = perf.choose_threads(torch_engine.cpu_threads, "auto", "cpu", 1, said.append)
        assert gov.current == 64 and len(said) == 1  # no quota: torch's count, nothing said
    finally:
        torch_engine.cpu_threads(before)
