"""`dcgan eval`, `dcgan compare` and `dcgan train --eval-every`, end to end in subprocesses, plus
the in-process guarantee that evaluating during training changes nothing about training."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, fit, run_dcgan, save_checkpoint, tiny_config
from dcgan import torch_engine
from dcgan.datasets import ImageSet, load_digits
from dcgan.evaluation import TrainingEval
from dcgan.loop import Hooks
from dcgan.metrics import Evaluator
from dcgan.saving import Saver
from dcgan.torch_engine import create_state, load_state, state_to_arrays

TINY = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16", "--batch-size", "16"]
TINY += ["--no-progress"]
CPU = torch.device("cpu")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A 4-step tiny run on the bundled digits (shared: the tests only read its weights)."""
    cwd = tmp_path_factory.mktemp("run")
    run_dcgan("train", "--steps", 4, "--name", "d", *TINY, cwd=cwd)
    return cwd / "runs" / "d"


def test_eval_prints_a_table_and_appends_metrics_jsonl(digits_run, image_folder, tmp_path):
    out = run_dcgan("eval", digits_run, "--num", 200, "--no-progress", cwd=tmp_path)
    table = out.stdout.splitlines()
    assert table[0].split() == ["metric", "value"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert {"digits_fd", "digits_coverage", "swd"} <= rows.keys()  # the defaults for digits
    assert "lower is better" in rows["digits_fd"]
    (line,) = _lines(digits_run / "metrics.jsonl")
    assert line["step"] == 4 and line["checkpoint"] == "latest" and line["num"] == 200
    assert line["ref"] == "train" and line["metrics"]["digits_fd"] > 0
    assert set(line) >= {"time", "seconds", "seed"}

    # a folder as the reference, converted to the run's 1x28x28; same seed, same images
    out = run_dcgan("eval", digits_run, "--num", 200, "--metrics", "swd", "--ref", image_folder,
                "--no-progress", cwd=tmp_path)  # fmt: skip
    assert "pics" in out.stderr
    last = _lines(digits_run / "metrics.jsonl")[-1]
    assert set(last["metrics"]) == {"swd", "swd_28", "swd_14"} and last["ref"] == str(image_folder)
    again = run_dcgan("eval", digits_run, "--num", 200, "--metrics", "swd", "--ref", image_folder,
                  "--no-progress", cwd=tmp_path)  # fmt: skip
    assert again.stdout == out.stdout


def test_eval_every_keeps_best_checkpoint_and_generate_uses_it(tmp_path):
    args = ("--steps", 7, "--eval-every", 3, "--eval-num", 100, "--log-every", 2)
    out = run_dcgan("train", *args, "--name", "e", *TINY, cwd=tmp_path)
    run = tmp_path / "runs" / "e"
    assert "eval at step 3" in out.stderr
    evals = [r for r in _lines(run / "stats.jsonl") if r.get("eval")]
    assert [r["step"] for r in evals] == [3, 6, 7]  # on cadence, and the final weights
    assert all(r["digits_fd"] > 0 and r["swd"] > 0 for r in evals)
    config = json.loads((run / "config.json").read_text())["train"]
    assert (config["eval_every"], config["eval_metrics"], config["eval_num"]) == (
        3,
        "digits,swd",
        100,
    )
    best = min(evals, key=lambda r: r["digits_fd"])
    from dcgan.checkpoint import read_checkpoint

    _, meta = read_checkpoint(run / "checkpoints" / "best.safetensors")
    assert meta["step"] == best["step"] and meta["extra"]["best"]["value"] == best["digits_fd"]

    gen = run_dcgan("generate", run, "--checkpoint", "best", "--num", 3, "--out", tmp_path / "g",
                cwd=tmp_path)  # fmt: skip
    assert f"checkpoint step {best['step']}" in gen.stderr
    assert len(list((tmp_path / "g").glob("*.png"))) == 3
    run_dcgan("eval", run, "--checkpoint", "best", "--num", 100, "--metrics", "swd", cwd=tmp_path)
    assert _lines(run / "metrics.jsonl")[-1]["checkpoint"] == "best"

    # resume keeps the eval settings from the run config, and they cannot change
    run_dcgan("train", "--resume", run, "--steps", 9, "--no-progress", cwd=tmp_path)
    evals = [r["step"] for r in _lines(run / "stats.jsonl") if r.get("eval")]
    assert evals == [3, 6, 7, 9]
    proc = run_dcgan("train", "--resume", run, "--eval-every", 5, cwd=tmp_path, check=False)
    assert_one_line_error(proc, 2, "--eval-every cannot change on --resume")


def test_compare_shows_both_runs_metrics_and_config_differences(digits_run, tmp_path):
    run_dcgan("train", "--steps", 3, "--lr", "0.001", "--name", "other", *TINY, cwd=tmp_path)
    other = tmp_path / "runs" / "other"
    ran = run_dcgan("eval", other, "--num", 100, "--metrics", "swd", "--ref", "test", "--no-progress",
                cwd=tmp_path)  # fmt: skip
    assert "digits has no test split" in ran.stderr  # said, not silently swapped
    out = run_dcgan("compare", digits_run, other, cwd=tmp_path).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["run"] == ["d", "other"]
    assert rows["step"] == ["4", "3"]
    assert rows["train.lr_g"] == ["0.0008", "0.001"]  # the 28 px default, then --lr
    assert rows["train.steps"] == ["4", "3"]
    assert "model.latent_dim" not in rows  # equal keys are left out
    assert "[dcgan eval]" in out and rows["swd"][1] != "-"


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["eval", "RUN", "--metrics", "fid,nope"], 2, "unknown metric nope"),
        (["train", "--eval-every", "2", "--eval-metrics", "nope"], 2, "unknown metric nope"),
        (["train", "--eval-metrics", "swd"], 2, "need --eval-every"),
        (["train", "--eval-every", "0"], 2, "positive"),
        (["train", "--eval-every", "2", "--eval-metrics", "fid"], 2, "--eval-num >= 2048"),
        (["eval", "RUN", "--metrics", "fid", "--no-progress"], 1, "Inception weights not found"),
        (["eval", "RUN", "--metrics", "kid", "--inception-weights", "/no/w.pth"], 1, "not exist"),
        (["compare", "RUN", "/no/such/run"], 1, "does not exist"),
    ],
)
def test_bad_input_is_one_line(digits_run, tmp_path, args, code, fragment):
    args = [str(digits_run) if a == "RUN" else a for a in args]
    proc = run_dcgan(*args, cwd=tmp_path, check=False, DCGAN_OFFLINE="1")
    assert_one_line_error(proc, code, fragment)


def test_missing_inception_weights_fail_before_training_starts(tmp_path):
    proc = run_dcgan("train", "--eval-every", 2, "--eval-metrics", "kid,swd", "--name", "k", *TINY,
                 cwd=tmp_path, check=False, DCGAN_OFFLINE="1")  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Inception weights not found" in proc.stderr.splitlines()[-1]
    assert "DCGAN_OFFLINE" in proc.stderr and "--inception-weights" in proc.stderr
    assert not (tmp_path / "runs" / "k").exists()


def test_evaluating_during_training_leaves_training_and_resume_exact(tmp_path):
    data = ImageSet(images=load_digits().images[:400], name="digits400")
    config = tiny_config(steps=8, eval_every=2, eval_metrics="swd", eval_num=32)
    evaluator = Evaluator(data, "swd", use_cache=False)

    def run(config, state=None, run_dir=tmp_path / "whole"):
        state = state or create_state(config, CPU)
        saver = Saver(torch_engine, run_dir, config)
        hook = TrainingEval(evaluator, torch_engine, config, saver, CPU)
        fit(state, data, Hooks(evaluate=hook, eval_every=config.train.eval_every))
        return state

    plain = create_state(config, CPU)
    fit(plain, data)  # no evaluation at all
    whole = run(config)
    half_config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=4))
    half = run(half_config, run_dir=tmp_path / "half")
    path = save_checkpoint(half, tmp_path / "half", keep=2)
    resumed = run(config, load_state(path, CPU, config), run_dir=tmp_path / "half")

    arrays = [state_to_arrays(s)[0] for s in (plain, whole, resumed)]
    for key in arrays[0]:
        assert np.array_equal(arrays[0][key], arrays[1][key]), key  # eval touched nothing
        assert np.array_equal(arrays[1][key], arrays[2][key]), key  # resume is exact
    assert whole.extra["best"] == resumed.extra["best"]
    assert whole.extra["best"]["key"] == "swd"
    assert (tmp_path / "whole" / "checkpoints" / "best.safetensors").is_file()


# ---------------------------------------------------------------------------------------------
# issue 15: the table survives a failed append, too few samples and a non-digits reference


def _main(capsys, *argv):
    from dcgan.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and fragment in lines[0], err


def test_eval_prints_the_table_when_the_append_fails(digits_run, tmp_path, capsys, monkeypatch):
    import shutil

    import dcgan.rundir

    run = tmp_path / "d"
    shutil.copytree(digits_run, run)

    def read_only(run_dir, record):
        raise OSError(30, "Read-only file system")

    metrics = run / "metrics.jsonl"
    before = metrics.read_text() if metrics.exists() else None
    monkeypatch.setattr(dcgan.rundir, "append_metrics", read_only)
    code, out, err = _main(capsys, "eval", run, "--num", 100, "--metrics", "swd", "--no-progress")
    assert code == 0 and out.splitlines()[0].split() == ["metric", "value"] and "swd" in out
    _one_line(err, "warning: not appended to")
    assert "Read-only file system" in err
    assert (metrics.read_text() if metrics.exists() else None) == before


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--num", "1"], "--num 1 is too few images for digits: it needs at least 100"),
        (["--num", "5", "--metrics", "swd"], "--num 5 is too few images for swd: it needs at"),
        (["--num", "50", "--metrics", "kid"], "too few images for kid: it needs at least 100"),
    ],
)
def test_eval_refuses_too_few_samples(digits_run, capsys, argv, fragment):
    code, _, err = _main(capsys, "eval", digits_run, *argv, "--no-progress")
    assert code == 2
    _one_line(err, fragment)


def test_train_refuses_too_few_eval_samples(tmp_path, capsys):
    argv = ["train", "--eval-every", "2", "--eval-num", "5", "--runs-dir", tmp_path, *TINY]
    code, _, err = _main(capsys, *argv)
    assert code == 2 and not any(tmp_path.iterdir())  # no run directory made
    _one_line(err, "--eval-num 5 is too few images for digits: it needs at least 100")


@pytest.fixture
def circles(tmp_path) -> Path:
    from PIL import Image, ImageDraw

    folder = tmp_path / "circles"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(120):
        im = Image.new("L", (28, 28), 0)
        r = int(rng.integers(4, 12))
        x, y = rng.integers(r, 28 - r, 2)
        ImageDraw.Draw(im).ellipse([x - r, y - r, x + r, y + r], outline=255, width=2)
        im.save(folder / f"{i}.png")
    return folder


def test_digits_metric_against_a_folder_of_circles(digits_run, circles, tmp_path, capsys):
    import shutil

    run = tmp_path / "d"
    shutil.copytree(digits_run, run)
    common = ("--num", 100, "--ref", circles, "--no-progress")
    code, _, err = _main(capsys, "eval", run, "--metrics", "digits", *common)
    assert code == 2
    _one_line(err, "--metrics digits needs digit images: the reference circles does not look")
    # the default metrics of a digits run: the digits metric is left out, with a note
    code, out, err = _main(capsys, "eval", run, *common)
    assert code == 0 and "swd" in out and "digits_fd" not in out
    assert "note: the reference circles does not look like digits" in err
    # the digits themselves pass the check (a folder of bundled digits)
    digits = tmp_path / "digits"
    digits.mkdir()
    from PIL import Image

    for i, im in enumerate(load_digits().images[:150]):
        Image.fromarray(im[0]).save(digits / f"{i}.png")
    code, out, _ = _main(capsys, "eval", run, "--metrics", "digits", "--num", 100, "--ref", digits)
    assert code == 0 and "digits_fd" in out
