"""The command line end to end, in subprocesses, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error, run_dcgan

TINY = [
    "--g-features",
    "8",
    "--d-features",
    "8",
    "--latent-dim",
    "16",
    "--batch-size",
    "16",
    "--no-progress",
]


def test_train_generate_nice_resume_on_digits(tmp_path):
    run_dcgan(
        "train",
        "--steps",
        6,
        "--sample-every",
        3,
        "--log-every",
        2,
        "--name",
        "d",
        *TINY,
        cwd=tmp_path,
    )
    run = tmp_path / "runs" / "d"
    for name in ("config.json", "stats.jsonl", "real_samples.png", "progress.gif"):
        assert (run / name).is_file(), name
    assert len(list((run / "samples").glob("step_*.png"))) >= 2
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [2, 4, 6]

    out = run_dcgan(
        "generate", run, "--num", 5, "--seed", 7, "--grid", "--out", tmp_path / "g1", cwd=tmp_path
    )
    assert "wrote 5 images" in out.stderr
    run_dcgan("generate", run, "--num", 5, "--seed", 7, "--out", tmp_path / "g2", cwd=tmp_path)
    pngs = sorted((tmp_path / "g1").glob("0*.png"))
    assert len(pngs) == 5 and (tmp_path / "g1" / "grid.png").is_file()
    for p in pngs:  # the same seed gives the same images
        assert np.array_equal(
            np.asarray(Image.open(p)), np.asarray(Image.open(tmp_path / "g2" / p.name))
        )

    run_dcgan("generate", run, "--num", 4, "--nice", 0.5, "--out", tmp_path / "nice", cwd=tmp_path)
    rows = (tmp_path / "nice" / "scores.csv").read_text().splitlines()
    assert rows[0] == "file,rank,d_logit" and len(rows) == 5
    scores = [float(r.split(",")[2]) for r in rows[1:]]
    assert scores == sorted(scores, reverse=True)

    interp = tmp_path / "interp"
    run_dcgan("generate", run, "--interpolate", 5, "--num", 2, "--out", interp, cwd=tmp_path)
    assert len(list(interp.glob("0*.png"))) == 10
    grid = np.asarray(Image.open(interp / "grid.png"))
    assert grid.shape[:2] == (2 + 2 * 30, 2 + 5 * 30)  # 2 rows of 5 frames, 28 px + padding
    frames = [np.asarray(Image.open(interp / f"{i:05d}.png")) for i in range(10)]
    assert not np.array_equal(frames[0], frames[4])  # the walk moves

    arith = tmp_path / "arith"
    run_dcgan("generate", run, "--arithmetic", "0,1 - 2 + 3,4", "--out", arith, cwd=tmp_path)
    assert len(list(arith.glob("0*.png"))) == 12 and (arith / "grid.png").is_file()
    bad = run_dcgan(
        "generate", run, "--arithmetic", "0 - 99 + 1", "--num", 8, cwd=tmp_path, check=False
    )
    assert_one_line_error(bad, 2, "not among the 8 samples")

    run_dcgan("train", "--resume", run, "--steps", 10, "--no-progress", cwd=tmp_path)
    assert [json.loads(x)["step"] for x in (run / "stats.jsonl").read_text().splitlines()][-1] == 10
    done = run_dcgan("train", "--resume", run, "--no-progress", cwd=tmp_path)
    assert "already at step 10" in done.stderr


def test_train_on_a_folder_and_runs_are_never_overwritten(image_folder, tmp_path):
    args = ("train", "--data", image_folder, "--image-size", 32, "--steps", 2, *TINY)
    first = run_dcgan(*args, cwd=tmp_path)
    assert "24 images, 3x32x32" in first.stderr and "skipped 1 unreadable file" in first.stderr
    second = run_dcgan(*args, cwd=tmp_path)
    assert "prepared cache" in second.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "pics-dcgan32",
        "pics-dcgan32-2",
    ]
    clash = run_dcgan(*args, "--name", "pics-dcgan32", cwd=tmp_path, check=False)
    assert clash.returncode == 2 and "already exists" in clash.stderr


def test_mlp_model(tmp_path):
    run_dcgan("train", "--model", "mlp", "--steps", 3, "--name", "m", *TINY, cwd=tmp_path)
    run_dcgan("generate", tmp_path / "runs" / "m", "--num", 3, cwd=tmp_path)


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["train", "--data", "/no/such/folder"], 1, "does not exist"),
        (["train", "--image-size", "48"], 2, "28, 32, 64, 128"),
        (["train", "--batch-size", "0"], 2, "positive"),
        (["train", "--batch-size", "abc"], 2, "not an integer"),
        (["train", "--loss", "nope"], 2, "invalid choice"),
        (["train", "--threads", "many"], 2, "'auto' or a positive integer"),
        (["train", "--threads", "2", "--engine", "numpy"], 2, "torch engine"),
        (["generate", "/no/such/run"], 1, "does not exist"),
        (["generate", "."], 1, "not a dcgan run directory"),
        (["train", "--resume", "."], 1, "not a dcgan run directory"),
        (["generate"], 2, "required"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, code, fragment):
    assert_one_line_error(run_dcgan(*args, cwd=tmp_path, check=False), code, fragment)


def test_empty_folder_and_corrupt_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run_dcgan("train", "--data", tmp_path / "empty", cwd=tmp_path, check=False), 1, "no images"
    )
    run_dcgan("train", "--steps", 2, "--name", "r", *TINY, cwd=tmp_path)
    run = tmp_path / "runs" / "r"
    (ckpt,) = (run / "checkpoints").iterdir()
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert_one_line_error(run_dcgan("generate", run, cwd=tmp_path, check=False), 1, "corrupt")
    assert_one_line_error(
        run_dcgan("train", "--resume", run, cwd=tmp_path, check=False), 1, "corrupt"
    )


def test_mismatched_checkpoint(tmp_path):
    run_dcgan("train", "--steps", 2, "--name", "a", *TINY, cwd=tmp_path)
    run_dcgan("train", "--steps", 2, "--name", "b", "--g-features", 4, *TINY[2:], cwd=tmp_path)
    a, b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    # b's weights under a's config
    meta_a = json.loads((a / "config.json").read_text())
    from dcgan import checkpoint as ckpt
    from dcgan import rundir

    arrays, meta = ckpt.read_checkpoint(rundir.find_checkpoint(b))
    meta["config"] = meta_a
    ckpt.write_checkpoint(rundir.checkpoint_path(a, 99), arrays, meta)
    assert_one_line_error(run_dcgan("generate", a, cwd=tmp_path, check=False), 1, "does not match")


def test_resume_flags_that_cannot_change(tmp_path):
    run_dcgan("train", "--steps", 2, "--name", "r", *TINY, cwd=tmp_path)
    proc = run_dcgan(
        "train", "--resume", tmp_path / "runs" / "r", "--lr", "0.1", cwd=tmp_path, check=False
    )
    assert_one_line_error(proc, 2, "--lr cannot change on --resume")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_says_how_to_resume(tmp_path, sig, code):
    env = {**os.environ, "DCGAN_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dcgan",
            "train",
            "--steps",
            "100000",
            "--name",
            "s",
            "--log-every",
            "1",
            *TINY,
        ],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    stats = tmp_path / "runs" / "s" / "stats.jsonl"
    deadline = time.time() + 120
    while not (stats.exists() and stats.stat().st_size > 0) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Resume with: dcgan train --resume" in err
    ckpts = list((tmp_path / "runs" / "s" / "checkpoints").glob("step_*.safetensors"))
    assert len(ckpts) == 1 and int(ckpts[0].stem.split("_")[1]) >= 1
