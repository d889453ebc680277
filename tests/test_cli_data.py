"""`dcgan data ...` and `dcgan train --data NAME --split --data-dir`, in subprocesses."""

from __future__ import annotations

import json
import shutil
from importlib import resources

import pytest
from PIL import Image

from conftest import run_dcgan as dcgan
from test_cli import TINY


def test_data_commands_on_a_folder(image_folder, tmp_path):
    out = dcgan("data", "prepare", image_folder, "--image-size", 32, "--no-progress", cwd=tmp_path)
    assert "24 images, 3x32x32" in out.stdout and "skipped 1 unreadable" in out.stdout
    assert "skipped.txt" in out.stdout and "warning: only 24 images" in out.stdout
    info = dcgan("data", "info", image_folder, "--image-size", 32, cwd=tmp_path).stdout
    assert "count     24" in info and "bytes" in info and "skipped   1" in info
    dcgan("data", "show", image_folder, "--num", 9, "--out", tmp_path / "g.png", cwd=tmp_path)
    assert Image.open(tmp_path / "g.png").size == (2 + 3 * 66, 2 + 3 * 66)
    listing = dcgan("data", "list", cwd=tmp_path).stdout
    assert "cifar10" in listing and "celeba" in listing and "pics" in listing


def test_train_on_named_set_offline_and_resume(tmp_path):
    # the MNIST test split is bundled (the digits): no ../shared needed, and no train files
    data_dir = tmp_path / "sets"
    shutil.copytree(resources.files("dcgan") / "assets" / "mnist", data_dir / "mnist")
    common = ("--data-dir", data_dir, "--steps", 2, "--log-every", 1, *TINY)
    dcgan("train", "--data", "mnist", "--split", "test", "--name", "m", *common, cwd=tmp_path)
    config = json.loads((tmp_path / "runs" / "m" / "config.json").read_text())
    assert config["data"]["split"] == "test" and config["data"]["data_dir"] == str(data_dir)
    proc = dcgan("train", "--resume", tmp_path / "runs" / "m", "--steps", 3, "--no-progress",
                 cwd=tmp_path, DCGAN_OFFLINE="1")  # fmt: skip
    assert "mnist-test, 10000 images" in proc.stderr
    bad = dcgan("train", "--data", "mnist", "--name", "t", *common, cwd=tmp_path, check=False,
                DCGAN_OFFLINE="1")  # fmt: skip
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "train-images-idx3-ubyte.gz" in bad.stderr and str(data_dir / "mnist") in bad.stderr
    bad_split = dcgan("data", "prepare", "mnist", "--split", "extra", cwd=tmp_path, check=False)
    assert bad_split.returncode == 2 and "extra is not one of train, test" in bad_split.stderr


# ---------------------------------------------------------------------------------------------
# issue 15: sizes, formats, names and pipes


def _main(capsys, *argv):
    from dcgan.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("size", [1, 31, 4096])
def test_data_commands_refuse_sizes_nothing_trains_on(image_folder, tmp_path, capsys, size):
    for action in ("show", "prepare", "info"):
        argv = ["data", action, image_folder, "--image-size", size, "--cache-dir", tmp_path / "c"]
        code, _, err = _main(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"--image-size {size} is not one of 28, 32, 64, 128" in err
    assert not (tmp_path / "c").exists()  # nothing written


def test_data_show_writes_the_format_its_name_says(tmp_path, capsys):
    code, _, _ = _main(capsys, "data", "show", "digits", "--num", 4, "--out", tmp_path / "g.jpg")
    assert code == 0 and Image.open(tmp_path / "g.jpg").format == "JPEG"
    code, _, _ = _main(capsys, "data", "show", "digits", "--num", 4, "--out", tmp_path / "g.PNG")
    assert code == 0 and Image.open(tmp_path / "g.PNG").format == "PNG"
    code, _, err = _main(capsys, "data", "show", "digits", "--out", tmp_path / "g.gif")
    assert (
        code == 2 and "must end in .png, .jpg or .jpeg" in err and not (tmp_path / "g.gif").exists()
    )


def test_a_misspelt_set_lists_the_known_names(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (["data", "show", "cifar11"], ["train", "--data", "cifar11", "--steps", "1"]):
        code, _, err = _main(capsys, *argv)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert "did you mean cifar10?" in err and "known datasets: digits, mnist" in err
    assert not (tmp_path / "runs").exists()


def test_data_list_into_a_closed_pipe_is_quiet(tmp_path):
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader (`head -3`) is gone before dcgan writes
    env = {**os.environ, "DCGAN_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "dcgan", "data", "list"],
        stdout=write,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        timeout=120,
    )
    os.close(write)
    assert proc.stderr == "" and proc.returncode == 141
