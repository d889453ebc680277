"""`dcgan data ...` and `dcgan train --data NAME --split --data-dir`, in subprocesses."""

from __future__ import annotations

import json
import shutil
from importlib import resources

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
