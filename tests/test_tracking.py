"""Progress output for each place it goes: a bar on a terminal, plain lines in a pipe, JSON objects
for tools, the final line alone; and `dcgan train` with stderr piped writes no bar frames."""

from __future__ import annotations

import io
import json

import pytest

from conftest import run_dcgan
from dcgan.report import format_duration
from dcgan.tracking import (
    BarProgress,
    JsonProgress,
    LineProgress,
    make_progress,
    progress_mode,
)


def _record(step: int, **extra) -> dict:
    return {"step": step, "epoch": 1, "img_per_s": 812.4, "loss_d": 0.51234, "loss_g": 2.31,
            "d_real": 0.712, "d_fake": 0.288, "wall_time": 3.0, **extra}  # fmt: skip


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _drive(progress, steps=(50, 100, 150)) -> None:
    for step in steps:
        progress.update_to(step)
        progress.show(_record(step))
    progress.write("eval at step 150: swd 12")
    progress.done("done: 150 steps")


def test_lines_mode_prints_one_plain_line_per_interval():
    err = io.StringIO()
    _drive(make_progress("lines", total=300, initial=0, stream=err))
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue() and len(lines) == 5
    first = lines[0]
    for part in ("step 50/300 (16%)", "epoch 1", "812 img/s", "loss_d 0.512", "loss_g 2.310",
                 "D(x) 0.71", "D(G(z)) 0.29", "ETA "):  # fmt: skip
        assert part in first, (part, first)
    assert lines[-2:] == ["eval at step 150: swd 12", "done: 150 steps"]


def test_json_mode_prints_objects_on_stdout_and_messages_on_stderr():
    err, out = io.StringIO(), io.StringIO()
    progress = make_progress("json", total=300, initial=0, stream=err, out=out)
    _drive(progress)
    progress.show(_record(200, loss_d=float("nan")))
    objects = [json.loads(line) for line in out.getvalue().splitlines()]  # strict: no NaN
    assert [o["step"] for o in objects] == [50, 100, 150, 200]
    assert objects[0]["total"] == 300 and objects[0]["loss_g"] == 2.31 and "eta_s" in objects[0]
    assert objects[-1]["loss_d"] is None
    assert err.getvalue().splitlines() == ["eval at step 150: swd 12", "done: 150 steps"]


def test_quiet_mode_prints_only_the_final_line():
    err = io.StringIO()
    _drive(make_progress("quiet", total=300, initial=0, stream=err))
    assert err.getvalue() == "done: 150 steps\n"


def test_off_mode_keeps_messages_but_no_progress():
    err = io.StringIO()
    _drive(make_progress("off", total=300, initial=0, stream=err))
    assert err.getvalue().splitlines() == ["eval at step 150: swd 12", "done: 150 steps"]


def test_auto_is_a_bar_on_a_terminal_and_lines_elsewhere():
    assert isinstance(make_progress("auto", 10, 0, stream=io.StringIO()), LineProgress)
    tty = _Tty()
    bar = make_progress("auto", 10, 0, stream=tty)
    assert isinstance(bar, BarProgress)
    _drive(bar, steps=(5, 10))
    assert "\r" in tty.getvalue() and "done: 150 steps" in tty.getvalue()
    assert isinstance(make_progress("json", 10, 0, stream=tty), JsonProgress)
    with pytest.raises(ValueError, match="unknown progress mode"):
        make_progress("loud", 10, 0)


def test_flags_to_mode_and_durations():
    assert progress_mode() == "auto" and progress_mode(progress=False) == "off"
    assert progress_mode(quiet=True) == "quiet" and progress_mode(json_progress=True) == "json"
    assert [format_duration(s) for s in (None, 5, 71, 3725)] == ["-", "5s", "1m11s", "1h02m05s"]


def test_eta_counts_from_the_resumed_step():
    progress = make_progress("lines", total=1000, initial=900, stream=io.StringIO())
    assert progress.eta_seconds(900) is None
    progress._started -= 10.0  # 10 s for the first 50 steps of this session
    assert progress.eta_seconds(950) == pytest.approx(10.0, rel=0.05)


TINY = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16", "--batch-size", "16"]
TINY += ["--log-every", "4", "--no-report"]


def test_train_with_stderr_piped_writes_lines_not_bar_frames(tmp_path):
    proc = run_dcgan("train", "--steps", 12, "--name", "r", *TINY, cwd=tmp_path)
    assert "\r" not in proc.stderr and proc.stdout == ""
    steps = [line for line in proc.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["4/12", "8/12", "12/12"]
    assert proc.stderr.splitlines()[0].startswith("data: digits")
    assert proc.stderr.splitlines()[-1].startswith("done: 12 steps")

    # --quiet: the final line alone
    quiet = run_dcgan("train", "--resume", tmp_path / "runs" / "r", "--steps", 16, "--quiet",
                      cwd=tmp_path)  # fmt: skip
    assert quiet.stdout == "" and quiet.stderr.splitlines() == [quiet.stderr.strip()]
    assert quiet.stderr.startswith("done: 16 steps")

    # --json-progress: objects on stdout, one per log interval; stderr as usual, minus the lines
    js = run_dcgan("train", "--resume", tmp_path / "runs" / "r", "--steps", 24, "--json-progress",
                   cwd=tmp_path)  # fmt: skip
    objects = [json.loads(line) for line in js.stdout.splitlines()]
    assert [o["step"] for o in objects] == [20, 24] and objects[-1]["total"] == 24
    assert {"loss_d", "loss_g", "d_real", "d_fake", "img_per_s", "epoch", "eta_s"} <= set(
        objects[0]
    )
    assert not any(line.startswith("step ") for line in js.stderr.splitlines())
    assert js.stderr.splitlines()[-1].startswith("done: 24 steps")
