import numpy as np
import pytest
from PIL import Image

from dcgan.classes import PUBLISHED, class_folders
from dcgan.datasets import (
    ImageSet,
    batch_indices,
    load_digits,
    load_folder,
    load_source,
    require_labels,
    steps_per_epoch,
)
from dcgan.errors import DataError, UsageError


def test_bundled_digits():
    data = load_digits()
    assert data.images.shape == (10000, 1, 28, 28) and data.images.dtype == np.uint8
    assert data.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert data.labels.dtype == np.int64 and data.class_names == tuple("0123456789")
    assert data.num_classes == 10 and data.unlabelled_reason is None
    require_labels(data, "digits")  # labelled: no error
    assert abs(data.images.mean() / 255 - 0.1325) < 1e-3
    assert load_digits(32).images.shape[2:] == (32, 32)
    assert load_digits(64, 3).images.shape[1:] == (3, 64, 64)


def test_folder_skips_and_counts_bad_files(image_folder, tmp_path):
    data = load_folder(image_folder, 32, cache_dir=tmp_path / "cache")
    assert data.images.shape == (24, 3, 32, 32)
    assert data.skipped == ["b/broken.jpg"]
    assert not data.from_cache
    again = load_folder(image_folder, 32, cache_dir=tmp_path / "cache")
    assert again.from_cache and np.array_equal(again.images, data.images)
    # a changed folder is prepared anew
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(image_folder / "a" / "new.png")
    assert len(load_folder(image_folder, 32, cache_dir=tmp_path / "cache")) == 25


def test_modes_and_crop(tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    Image.new("L", (30, 10), 200).save(folder / "gray.png")
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    rgba.save(folder / "rgba.png")
    Image.new("RGB", (20, 20), (0, 0, 255)).convert("P").save(folder / "pal.gif")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(folder / "deep.tif")
    data = load_folder(folder, 8, cache_dir=tmp_path / "c")
    assert data.images.shape == (4, 3, 8, 8) and not data.skipped
    by_name = dict(zip(["deep", "gray", "pal", "rgba"], data.images))
    assert by_name["deep"].min() == 255  # 16-bit white scaled, not clipped
    assert by_name["rgba"].min() == 255  # transparency composited on white
    assert by_name["pal"][2].min() > 200 and by_name["pal"][0].max() < 50


def test_channels_auto_and_forced(tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (12, 12), 40 * i).save(folder / f"{i}.png")
    assert load_folder(folder, 28, cache_dir=tmp_path / "c").images.shape[1] == 1
    assert load_folder(folder, 28, channels=3, cache_dir=tmp_path / "c").images.shape[1] == 3


def test_real_cifar_jpegs(cifar_dir, tmp_path):
    sub = tmp_path / "cifar"
    for cls in ("cat", "ship"):
        (sub / cls).mkdir(parents=True)
        for i in range(20):
            (sub / cls / f"{i:04d}.jpg").write_bytes(
                (cifar_dir / cls / f"{i:04d}.jpg").read_bytes()
            )
    data = load_folder(sub, 32, cache_dir=tmp_path / "c")
    assert data.images.shape == (40, 3, 32, 32)
    direct = np.asarray(Image.open(sub / "cat" / "0000.jpg").convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(data.images[0], direct)  # 32 px in, 32 px out: pixels unchanged


@pytest.mark.parametrize("make", ["missing", "empty", "file", "only_bad"])
def test_folder_errors(tmp_path, make):
    path = tmp_path / "x"
    if make == "empty":
        path.mkdir()
    elif make == "file":
        path.write_text("hi")
    elif make == "only_bad":
        path.mkdir()
        (path / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError):
        load_source(str(path), 28, None, tmp_path / "c")


def test_batch_order_is_a_function_of_seed_and_step():
    n, b = 100, 16
    spe = steps_per_epoch(n, b)
    epoch0 = np.concatenate([batch_indices(n, b, 3, s)[1] for s in range(spe)])
    assert len(set(epoch0.tolist())) == spe * b  # no repeats inside an epoch
    assert batch_indices(n, b, 3, spe)[0] == 1
    assert np.array_equal(batch_indices(n, b, 3, 2)[1], batch_indices(n, b, 3, 2)[1])
    assert not np.array_equal(batch_indices(n, b, 3, 0)[1], batch_indices(n, b, 4, 0)[1])
    _, small = batch_indices(5, 16, 0, 0)
    assert len(small) == 16 and set(small.tolist()) == set(range(5))


@pytest.mark.parametrize(
    "rels, labels, names, reason",
    [
        (["b/1.png", "a/x/2.png", "a/3.png"], [1, 0, 0], ("a", "b"), None),  # deeper: its folder
        (["pets/dog/1.png", "pets/cat/2.png"], [1, 0], ("cat", "dog"), None),  # a wrapper folder
        (["1.png", "2.png"], None, None, "a folder with 2 loose images and no class subfolders"),
        (
            ["only/1.png", "only/2.png"],
            None,
            None,
            "a folder with 2 loose images and no class subfolders, inside only/",
        ),
        (
            ["x.png", "a/1.png", "b/1.png", "c/1.png", "d/1.png"],
            None,
            None,
            "a folder with 1 loose images beside 4 subfolders (a, b, c, ...); "
            "class subfolders need every image inside one",
        ),
    ],
)
def test_the_class_subfolder_rule(rels, labels, names, reason):
    found = class_folders(rels)
    assert (None if found.labels is None else found.labels.tolist()) == labels
    assert found.class_names == names and found.reason == reason


def test_published_class_names():
    assert {len(v) for v in PUBLISHED.values()} == {10, 100}
    cifar100 = PUBLISHED["cifar100"]
    assert len(set(cifar100)) == 100 and list(cifar100) == sorted(cifar100)
    assert PUBLISHED["svhn"][0] == "0" and PUBLISHED["fashion-mnist"][9] == "Ankle boot"


def test_require_labels_names_what_was_found(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    for i in range(3):
        Image.new("L", (12, 12), 40 * i).save(folder / f"{i}.png")
    data = load_source(str(folder), 28, None, tmp_path / "c")
    with pytest.raises(UsageError) as e:
        require_labels(data, str(folder))
    assert str(e.value) == (
        f"--conditional needs labels: {folder} has none "
        "(a folder with 3 loose images and no class subfolders)"
    )
    bare = ImageSet(np.zeros((4, 1, 8, 8), np.uint8), "bare")
    with pytest.raises(UsageError, match=r"bare has none \(4 images without class labels\)$"):
        require_labels(bare, "bare")
