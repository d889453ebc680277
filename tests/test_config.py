import pytest

from dcgan.config import ModelConfig, RunConfig, TrainConfig
from dcgan.errors import UsageError


def test_json_round_trip():
    cfg = RunConfig(
        model=ModelConfig(image_size=64, channels=3), train=TrainConfig(ema=True, steps=7)
    )
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_keys_are_ignored_and_bad_schema_refused():
    d = RunConfig().to_dict()
    d["train"]["future_option"] = 1
    assert RunConfig.from_dict(d) == RunConfig()
    d["schema_version"] = 99
    with pytest.raises(UsageError, match="schema version 99"):
        RunConfig.from_dict(d)


@pytest.mark.parametrize(
    "cfg, message",
    [
        (RunConfig(model=ModelConfig(image_size=48)), "28, 32, 64, 128"),
        (RunConfig(train=TrainConfig(batch_size=0)), "batch-size"),
        (RunConfig(train=TrainConfig(loss="nope")), "loss"),
        (RunConfig(train=TrainConfig(lr_g=-1.0)), "lr-g"),
        (RunConfig(model=ModelConfig(channels=2)), "channels"),
        (RunConfig(train=TrainConfig(beta1=1.5)), "beta1"),
    ],
)
def test_validation_messages(cfg, message):
    with pytest.raises(UsageError, match=message):
        cfg.validate()


def test_mlp_accepts_any_size():
    RunConfig(model=ModelConfig(kind="mlp", image_size=20)).validate()
