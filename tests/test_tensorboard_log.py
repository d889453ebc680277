"""`--tensorboard`: scalars, grids and metrics land in RUN/tb/ and read back with TensorBoard's
own reader; a missing package is one line naming the extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dcgan.errors import DcganError


def test_event_files_read_back(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dcgan.tensorboard_log import TensorBoardHook

    hook = TensorBoardHook(tmp_path / "tb")
    for step in (4, 8):
        hook.on_log({"step": step, "epoch": 0, "loss_d": 1.0 / step, "loss_g": 2.0, "d_real": 0.7,
                     "d_fake": float("nan"), "img_per_s": 100.0, "wall_time": 1.0})  # fmt: skip
    hook.on_samples(4, np.full((4, 1, 8, 8), 200, np.uint8))
    grid_png = tmp_path / "grid.png"
    from PIL import Image

    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(grid_png)
    hook.on_samples(8, grid_png)
    hook.on_eval({"step": 8, "eval": True, "swd": 12.5, "eval_seconds": 0.3})
    hook.close()

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/D", "loss/G", "D_output/D(x)", "speed/img_per_s", "metrics/swd"} <= set(
        tags["scalars"]
    )
    assert "D_output/D(G(z))" not in tags["scalars"]  # NaN is left out, not written
    assert [(e.step, e.value) for e in events.Scalars("loss/D")] == [(4, 0.25), (8, 0.125)]
    assert [(e.step, e.value) for e in events.Scalars("metrics/swd")] == [(8, 12.5)]
    images = events.Images("samples/fixed_noise")
    assert [(i.step, i.width, i.height) for i in images] == [
        (4, 22, 22),
        (8, 12, 10),
    ]  # 2x2 grid, 2 px padding


def test_missing_package_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    from dcgan.tensorboard_log import TensorBoardHook

    with pytest.raises(DcganError, match=r"pip install 'dcgan\[tensorboard\]'"):
        TensorBoardHook(tmp_path / "tb")


def test_train_with_tensorboard_writes_events(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from conftest import run_dcgan

    tiny = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16", "--batch-size", "16"]
    run_dcgan("train", "--steps", 8, "--log-every", 4, "--sample-every", 4, "--tensorboard",
              "--no-report", "--no-progress", "--name", "r", *tiny, cwd=tmp_path)  # fmt: skip
    events = EventAccumulator(str(tmp_path / "runs" / "r" / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/G")] == [4, 8]
    assert [i.step for i in events.Images("samples/fixed_noise")] == [4, 8]
