import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parents[1] / "bench" / "make_icons.py"
_spec = importlib.util.spec_from_file_location("make_icons", _PATH)
make_icons = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_icons)


def test_icons_are_rgba_in_the_size_range_and_a_function_of_seed_and_index(tmp_path):
    make_icons.main([str(tmp_path / "a"), "--num", "12", "--seed", "3"])
    make_icons.main([str(tmp_path / "b"), "--num", "5", "--seed", "3"])
    files = sorted((tmp_path / "a").glob("*.png"))
    assert len(files) == 12
    from PIL import Image

    arrays = []
    for f in files:
        im = Image.open(f)
        assert im.mode == "RGBA" and 64 <= im.size[0] <= 72 and im.size[0] == im.size[1]
        arrays.append(np.asarray(im))
    for f in sorted((tmp_path / "b").glob("*.png")):  # prefix-stable
        assert np.array_equal(
            np.asarray(Image.open(f)), np.asarray(Image.open(tmp_path / "a" / f.name))
        )
    assert not np.array_equal(np.asarray(make_icons.make_icon(4, 0)), arrays[0])
    # flat colours with some transparency, and not all the same picture
    alphas = np.concatenate([a[..., 3].ravel() for a in arrays])
    assert (alphas == 0).mean() > 0.05 and (alphas == 255).mean() > 0.2
    assert len({a.tobytes() for a in arrays}) == 12
    for a in arrays:  # every icon draws something besides its background
        assert len(np.unique(a.reshape(-1, 4), axis=0)) > 2


def test_icons_decode_through_the_folder_loader(tmp_path):
    from dcgan.datasets import load_source

    make_icons.main([str(tmp_path / "icons"), "--num", "8"])
    data = load_source(str(tmp_path / "icons"), 64, 3, cache_dir=tmp_path / "cache")
    assert data.images.shape == (8, 3, 64, 64) and data.images.dtype == np.uint8
    # transparency is composited onto white: the corners of untiled icons are white
    assert (data.images[:, :, 0, 0] == 255).all(axis=1).any()
