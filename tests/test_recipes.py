"""One recipe for the library and the command: `dcgan.train(RunConfig(...))` and `dcgan train`
resolve the same partial choices through `config.resolve` and write the same config.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dcgan
from conftest import run_dcgan
from dcgan.config import DataConfig, ModelConfig, RunConfig, TrainConfig, resume_config
from dcgan.errors import UsageError

# each case: the command's options, and the same choices as the library's RunConfig
CASES = {
    "digits": ([], RunConfig()),
    "folder64": (["--data", "{folder}"], None),  # RunConfig(data=DataConfig(source=folder))
    "wgan-gp": (["--loss", "wgan-gp"], RunConfig(train=TrainConfig(loss="wgan-gp"))),
    "numpy": (["--engine", "numpy"], RunConfig(train=TrainConfig(engine="numpy"))),
}
SHORT = ["--steps", "1", "--no-report", "--no-progress"]


def _short(config: RunConfig) -> RunConfig:
    import dataclasses

    return dataclasses.replace(config, train=dataclasses.replace(config.train, steps=1))


@pytest.fixture
def photo_folder(tmp_path):
    """80 small RGB pictures: more than the 64 px recipe's batch of 64."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(80):
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize("case", sorted(CASES))
def test_library_and_command_write_the_same_config(tmp_path, photo_folder, case):
    args, config = CASES[case]
    args = [a.format(folder=photo_folder) for a in args]
    if config is None:
        config = RunConfig(data=DataConfig(source=str(photo_folder)))
    run_dcgan("train", *args, *SHORT, "--name", "cli", "--runs-dir", tmp_path, cwd=tmp_path)
    dcgan.train(
        _short(config),
        runs_dir=tmp_path,
        name="api",
        cache_dir=tmp_path / "home",
        report=False,
    )
    cli = json.loads((tmp_path / "cli" / "config.json").read_text())
    api = json.loads((tmp_path / "api" / "config.json").read_text())
    assert cli == api


def test_the_default_config_is_the_default_recipe_on_the_digits():
    # what bench/README.md measured best at 28 px, recorded truthfully as "default"
    c = RunConfig()
    assert (c.model.image_size, c.model.g_features, c.model.d_features) == (28, 32, 32)
    assert (c.train.batch_size, c.train.lr_g, c.train.lr_d, c.train.epochs) == (
        128,
        8e-4,
        1.6e-3,
        50,
    )
    assert c.train.recipe == "default" and c.train.augment == "" and c.train.n_critic == 1


def test_a_folder_at_64_px_gets_diffaugment_unless_the_engine_has_none():
    folder = RunConfig(data=DataConfig(source="my/photos"))
    assert folder.model.image_size == 64 and folder.model.g_features == 64
    assert folder.train.augment == "color,translation,cutout" and folder.train.batch_size == 64
    numpy = RunConfig(data=DataConfig(source="my/photos"), train=TrainConfig(engine="numpy"))
    assert numpy.train.augment == "" and numpy.validate() == numpy


def test_the_paper_recipe_and_explicit_choices_win_over_the_defaults():
    paper = RunConfig(train=TrainConfig(recipe="paper"))
    assert (paper.model.g_features, paper.train.batch_size, paper.train.lr_g) == (64, 64, 2e-4)
    mine = RunConfig(model=ModelConfig(g_features=16), train=TrainConfig(lr_g=1e-3, n_critic=2))
    assert (mine.model.g_features, mine.model.d_features) == (16, 32)  # the rest stays the recipe's
    assert (mine.train.lr_g, mine.train.lr_d, mine.train.n_critic) == (1e-3, 1.6e-3, 2)
    wgan = RunConfig(train=TrainConfig(loss="wgan-gp"))
    assert wgan.model.d_norm == "layer" and wgan.train.n_critic == 5


def test_a_resume_may_change_only_what_config_resumable_lists():
    saved = RunConfig()
    assert resume_config(saved, {"steps": 9}).train.steps == 9
    longer = resume_config(RunConfig(train=TrainConfig(steps=5)), {"epochs": 3})
    assert longer.train.steps is None and longer.train.epochs == 3
    with pytest.raises(UsageError, match="--lr-g, --seed cannot change on --resume"):
        resume_config(saved, {"seed": 1, "lr_g": 1e-3})
