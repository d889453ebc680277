import json

import numpy as np
import pytest

from dcgan import checkpoint as ckpt
from dcgan.errors import CheckpointError


def test_round_trip_and_metadata(tmp_path):
    arrays = {"a.b": np.arange(6, dtype=np.float32).reshape(2, 3), "rng": np.zeros(3, np.uint8)}
    ckpt.write_checkpoint(tmp_path / "c.safetensors", arrays, {"step": 5, "nested": {"x": [1, 2]}})
    back, meta = ckpt.read_checkpoint(tmp_path / "c.safetensors", validate=False)
    assert meta["step"] == 5 and meta["nested"] == {"x": [1, 2]}
    assert np.array_equal(back["a.b"], arrays["a.b"]) and back["rng"].dtype == np.uint8
    assert ckpt.subset(back, "a") == {"b": back["a.b"]}


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_corrupt_files_are_clear_errors(tmp_path, content):
    (tmp_path / "bad.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.read_checkpoint(tmp_path / "bad.safetensors")


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    ckpt.write_checkpoint(path, {"w": np.ones(1000, np.float32)}, {"step": 1})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        ckpt.read_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# checkpoint metadata is validated on read (issue 15)


def _meta(**changes):
    from dcgan.config import RunConfig

    return {"step": 3, "config": RunConfig().to_dict(), **changes}


@pytest.mark.parametrize(
    "meta, message",
    [
        ([1, 2], "not a JSON object"),
        (_meta(config="a string"), "bad config: config is malformed"),
        (_meta(step="abc"), "step must be an integer from 0"),
        (_meta(step=-1), "step must be an integer from 0"),
        (_meta(step=True), "step must be an integer from 0"),
        (_meta(optimizers=[]), "optimizers has the wrong type"),
        (_meta(elapsed="long"), "elapsed must be a number"),
        ({"step": 1}, "bad config: config is malformed: expected a JSON object, got null"),
    ],
)
def test_bad_metadata_is_one_checkpoint_error(tmp_path, meta, message):
    path = tmp_path / "c.safetensors"
    # write_checkpoint merges meta into a dict: a list needs the raw writer
    from safetensors.numpy import save

    body = meta if not isinstance(meta, dict) else {"format": ckpt.CHECKPOINT_FORMAT, **meta}
    path.write_bytes(save({"x": np.zeros(1, np.float32)}, metadata={"dcgan": json.dumps(body)}))
    with pytest.raises(CheckpointError) as e:
        ckpt.read_checkpoint(path)
    assert message in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "g_features", 1e9, "--g-features must be an integer from 1 to 4096"),
        ("model", "latent_dim", -5, "--latent-dim must be an integer from 1 to 4096"),
        ("model", "kind", "unet", "--model unet is not one of dcgan, mlp"),
    ],
)
def test_bad_config_in_metadata(tmp_path, section, key, value, message):
    meta = _meta()
    meta["config"][section][key] = value
    path = tmp_path / "c.safetensors"
    ckpt.write_checkpoint(path, {"x": np.zeros(1, np.float32)}, meta)
    with pytest.raises(CheckpointError, match="holds a bad config") as e:
        ckpt.read_checkpoint(path)
    assert message in str(e.value)


def test_deeply_nested_metadata_is_corrupt_not_a_recursion_traceback(tmp_path):
    from safetensors.numpy import save

    path = tmp_path / "c.safetensors"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_bytes(save({"x": np.zeros(1, np.float32)}, metadata={"dcgan": deep}))
    with pytest.raises(CheckpointError):
        ckpt.read_checkpoint(path)


@pytest.mark.parametrize("content", ["[]", "null", '"x"', "{}", '{"schema_version": 1}'])
def test_bad_config_json(tmp_path, content):
    (tmp_path / "config.json").write_text(content)
    from dcgan.rundir import read_run_config

    with pytest.raises(CheckpointError, match="config.json"):
        read_run_config(tmp_path)


def test_a_config_larger_than_its_weights_is_refused_before_building(tmp_path):
    meta = _meta()
    meta["config"]["model"] |= {"image_size": 128, "g_features": 4096}  # ~35e9 weights
    path = tmp_path / "c.safetensors"
    ckpt.write_checkpoint(path, {"generator.w": np.zeros(10, np.float32)}, meta)
    with pytest.raises(CheckpointError, match="does not match its config: its generator needs"):
        ckpt.read_checkpoint(path)
