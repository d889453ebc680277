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


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    ckpt.atomic_write(path, b"good")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "fsync", boom)
    with pytest.raises(OSError):
        ckpt.atomic_write(path, b"half")
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind
