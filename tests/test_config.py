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


# ---------------------------------------------------------------------------------------------
# one validation path (issue 15): from_dict checks types and ranges and takes any JSON value


@pytest.mark.parametrize("value", [[], None, "x", 3, [1, 2]])
def test_from_dict_refuses_what_is_not_an_object(value):
    with pytest.raises(UsageError, match="malformed"):
        RunConfig.from_dict(value)


@pytest.mark.parametrize(
    "part, key, value, message",
    [
        ("model", None, "a string", "model must be a JSON object, got str"),
        ("model", "g_features", 1e9, "--g-features must be an integer from 1 to 4096"),
        ("model", "latent_dim", -5, "--latent-dim must be an integer from 1 to 4096, got -5"),
        ("model", "kind", "resnet", "--model resnet is not one of dcgan, mlp"),
        ("model", "channels", True, "--channels True is not one of 1, 3"),
        ("model", "image_size", "64", "--image-size '64' is not one of 28, 32, 64, 128"),
        ("train", "batch_size", 2.0, "--batch-size must be an integer from 1 to 65536"),
        ("train", "steps", "abc", "--steps must be an integer"),
        ("train", "lr_g", float("inf"), "--lr-g must be a number in (0, 1], got inf"),
        ("train", "lr_d", 10, "--lr-d must be a number in (0, 1], got 10"),
        ("train", "seed", -1, "--seed must be an integer from 0 to 9223372036854775807"),
        ("train", "seed", 2**64, "--seed must be an integer from 0 to 9223372036854775807"),
        ("train", "ema", "yes", "--ema must be true or false"),
        ("train", "eval_every", -3, "--eval-every must be 0 (off) or an integer from 0"),
        ("train", "beta1", float("nan"), "--beta1 must be a number in [0, 1)"),
        ("data", "source", "a\nb", "--data must be a non-empty printable string, got 'a\\nb'"),
        ("data", "channels", 2, "--channels 2 is not one of 1, 3"),
    ],
)
def test_from_dict_checks_every_field(part, key, value, message):
    d = RunConfig().to_dict()
    if key is None:
        d[part] = value
    else:
        d[part][key] = value
    with pytest.raises(UsageError) as e:
        RunConfig.from_dict(d)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_seed_range_is_the_commands():
    from dcgan.config import SEED_MAX

    d = RunConfig().to_dict()
    d["train"]["seed"] = SEED_MAX
    assert RunConfig.from_dict(d).train.seed == SEED_MAX


def test_long_values_are_cut_in_messages():
    d = RunConfig().to_dict()
    d["train"]["loss"] = "x" * 10_000
    with pytest.raises(UsageError) as e:
        RunConfig.from_dict(d)
    assert len(str(e.value)) < 200
