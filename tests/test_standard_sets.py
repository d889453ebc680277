"""Standard-set parsers (CIFAR binary, SVHN .mat, CelebA folder), preprocessing, the prepared
cache, and exact resume on a memory-mapped set."""

from __future__ import annotations

import dataclasses
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import fit, save_checkpoint, tiny_config
from dcgan import standard_sets as ss
from dcgan.classes import PUBLISHED
from dcgan.config import default_image_size
from dcgan.datasets import load_source
from dcgan.downloads import RemoteFile, md5_of
from dcgan.errors import DataError, UsageError


def _with_file(monkeypatch, name: str, path) -> None:
    """Point a registry entry at a locally made file (its md5), so the real code path runs."""
    spec = ss.STANDARD_SETS[name]
    remote = RemoteFile(path.name, md5_of(path))
    splits = {
        s: tuple(remote if f.name == path.name else f for f in fs) for s, fs in spec.splits.items()
    }
    monkeypatch.setitem(ss.STANDARD_SETS, name, dataclasses.replace(spec, splits=splits))
    monkeypatch.setenv("DCGAN_OFFLINE", "1")


def _tar(archive, members: dict[str, bytes]) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def test_cifar10_binary_archive(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 30).astype(np.uint8)
    pixels = rng.integers(0, 256, (30, 3, 32, 32), dtype=np.uint8)
    records = np.concatenate([labels[:, None], pixels.reshape(30, -1)], axis=1).tobytes()
    folder = tmp_path / "d" / "cifar10"
    folder.mkdir(parents=True)
    archive = folder / "cifar-10-binary.tar.gz"
    _tar(archive, {"cifar-10-batches-bin/test_batch.bin": records})
    _with_file(monkeypatch, "cifar10", archive)
    data = load_source("cifar10", 32, None, tmp_path / "c", data_dir=tmp_path / "d", split="test")
    assert data.images.shape == (30, 3, 32, 32)
    assert np.array_equal(data.images, pixels) and np.array_equal(data.labels, labels)
    assert data.class_names == PUBLISHED["cifar10"]  # no names file in this archive
    gray = load_source("cifar10", 64, 1, tmp_path / "c", data_dir=tmp_path / "d", split="test")
    assert gray.images.shape == (30, 1, 64, 64)
    with pytest.raises(DataError, match="data_batch_1.bin"):  # the train members are absent
        load_source("cifar10", 32, None, tmp_path / "c", data_dir=tmp_path / "d")


def test_cifar100_names_come_from_the_archive_when_it_has_them(tmp_path, monkeypatch):
    fine = np.array([3, 99, 0], np.uint8)
    records = np.concatenate(
        [np.zeros((3, 1), np.uint8), fine[:, None], np.zeros((3, 3072), np.uint8)], axis=1
    )
    names = [f"kind_{i}" for i in range(100)]  # not the published ones: proves they are read
    folder = tmp_path / "d" / "cifar100"
    folder.mkdir(parents=True)
    archive = folder / "cifar-100-binary.tar.gz"
    _tar(archive, {
        "cifar-100-binary/fine_label_names.txt": ("\n".join(names) + "\n\n").encode(),
        "cifar-100-binary/test.bin": records.tobytes(),
    })  # fmt: skip
    _with_file(monkeypatch, "cifar100", archive)
    data = load_source("cifar100", 32, None, tmp_path / "c", data_dir=tmp_path / "d", split="test")
    assert data.labels.tolist() == [3, 99, 0] and data.class_names == tuple(names)
    again = load_source("cifar100", 32, None, tmp_path / "c", data_dir=tmp_path / "d", split="test")
    assert again.from_cache and again.class_names == tuple(names)


def test_stl10_binary_archive(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, (5, 3, 96, 96), dtype=np.uint8)
    unlabeled = rng.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)
    train_y = np.array([1, 10, 3, 3, 7], np.uint8)  # STL-10 numbers its classes from 1
    members = {  # each plane stored column-major, as the real files are
        "train_X.bin": train.transpose(0, 1, 3, 2).tobytes(),
        "train_y.bin": train_y.tobytes(),
        "unlabeled_X.bin": unlabeled.transpose(0, 1, 3, 2).tobytes(),
    }
    folder = tmp_path / "d" / "stl10"
    folder.mkdir(parents=True)
    archive = folder / "stl10_binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(f"stl10_binary/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    _with_file(monkeypatch, "stl10", archive)
    monkeypatch.setattr(ss, "BLOCK", 2)  # several blocks per member
    assert default_image_size("stl10") == 64
    load = lambda split, size: load_source(  # noqa: E731
        "stl10", size, None, tmp_path / "c", data_dir=tmp_path / "d", split=split
    )
    both = load("train+unlabeled", 64)
    assert both.images.shape == (8, 3, 64, 64)
    assert both.labels.tolist() == [0, 9, 2, 2, 6, -1, -1, -1]
    assert both.class_names is None  # -1 is no class: --conditional says why
    assert both.unlabelled_reason == "the train+unlabeled split, where 3 of 8 have no label"
    assert load("train", 64).class_names == PUBLISHED["stl10"]
    first = Image.fromarray(train[0].transpose(1, 2, 0)).resize((64, 64), Image.Resampling.LANCZOS)
    assert np.abs(both.images[0].transpose(1, 2, 0).astype(int) - np.asarray(first)).max() <= 1
    big = load("unlabeled", 128)  # upscaled for the 128 px net
    assert big.images.shape == (3, 3, 128, 128) and big.labels.tolist() == [-1, -1, -1]
    with pytest.raises(DataError, match="test_X.bin"):  # not in this archive
        load("test", 64)


@pytest.mark.parametrize("compressed", [True, False])
def test_svhn_mat_without_scipy_at_runtime(tmp_path, monkeypatch, compressed):
    scipy_io = pytest.importorskip("scipy.io")  # only to write the test file
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (32, 32, 3, 9), dtype=np.uint8)
    y = rng.integers(1, 11, (9, 1)).astype(np.float64)  # SVHN: digit 0 is stored as 10
    folder = tmp_path / "d" / "svhn"
    folder.mkdir(parents=True)
    path = folder / "test_32x32.mat"
    scipy_io.savemat(path, {"y": y, "X": x}, do_compression=compressed)
    _with_file(monkeypatch, "svhn", path)
    monkeypatch.setattr(ss, "BLOCK", 4)  # several blocks through the streaming reader
    data = load_source("svhn", 32, None, tmp_path / "c", data_dir=tmp_path / "d", split="test")
    assert np.array_equal(data.images, x.transpose(3, 2, 0, 1))
    assert data.labels.tolist() == (y.ravel() % 10).astype(int).tolist()
    assert data.class_names == tuple("0123456789")  # label k is the digit k (10 -> 0)


def test_celeba_from_a_local_folder(tmp_path):
    folder = tmp_path / "d" / "celeba"
    with pytest.raises(DataError, match="img_align_celeba.zip") as e:
        load_source("celeba", 64, None, tmp_path / "c", data_dir=tmp_path / "d")
    assert str(folder) in str(e.value) and "\n" not in str(e.value)
    images = folder / "img_align_celeba"
    images.mkdir(parents=True)
    for i in range(1, 5):
        face = np.zeros((218, 178, 3), np.uint8)
        face[55:163, 35:143] = 60 * i  # the centre 108 x 108 box
        Image.fromarray(face).save(images / f"{i:06d}.jpg", quality=95)
    with pytest.raises(DataError, match="list_eval_partition.txt"):
        load_source("celeba", 64, None, tmp_path / "c", data_dir=tmp_path / "d")
    (folder / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n"
    )
    train = load_source("celeba", 64, None, tmp_path / "c", data_dir=tmp_path / "d")
    assert train.images.shape == (2, 3, 64, 64) and train.name == "celeba-train"
    assert abs(int(train.images[1].mean()) - 120) <= 3  # only the crop, no black border
    whole = load_source("celeba", 32, None, tmp_path / "c", data_dir=tmp_path / "d", split="all")
    assert len(whole) == 4 and whole.warnings  # a tiny set warns
    assert whole.labels is None and "attributes are not classes" in whole.unlabelled_reason


def test_split_and_sizes():
    assert default_image_size("mnist") == 28 and default_image_size("cifar10") == 32
    assert default_image_size("celeba") == 64 and default_image_size("some/folder") == 64


def test_every_named_set_has_a_default_training_size():
    from dcgan.config import DEFAULT_SIZES
    from dcgan.standard_sets import STANDARD_SETS

    assert set(STANDARD_SETS) <= set(DEFAULT_SIZES)
    for name, spec in STANDARD_SETS.items():  # the native size where a DCGAN exists for it
        assert DEFAULT_SIZES[name] == (spec.native_size if spec.native_size in (28, 32) else 64)
    with pytest.raises(UsageError, match="extra"):
        ss.get_set("mnist", "extra")
    block = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 1, 28, 28)
    assert ss.fit_images(block, 28, 32, 1).shape == (2, 1, 32, 32)
    assert ss.fit_images(block, 28, 64, 3).shape == (2, 3, 64, 64)


def test_exact_resume_on_a_memory_mapped_set(image_folder, tmp_path):
    torch = pytest.importorskip("torch")
    from dcgan import torch_engine as training
    from dcgan.folders import load_folder

    data = load_folder(image_folder, 28, channels=1, cache_dir=tmp_path / "c")
    data = load_folder(image_folder, 28, channels=1, cache_dir=tmp_path / "c")
    assert isinstance(data.images, np.memmap) and not data.images.flags.writeable
    config = tiny_config(steps=6, batch_size=8)
    device = torch.device("cpu")
    whole = training.create_state(config, device)
    fit(whole, data)
    half = training.create_state(
        dataclasses.replace(config, train=dataclasses.replace(config.train, steps=3)), device
    )
    fit(half, data)
    path = save_checkpoint(half, tmp_path / "run", 2)
    resumed = training.load_state(path, device, config)
    fit(resumed, data)
    for a, b in zip(whole.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b)


def test_data_modules_import_no_torch():
    """datasets.py is shared with the NumPy engine, so everything it imports stays torch-free."""
    import ast
    from pathlib import Path

    package = Path(ss.__file__).parent
    modules = ("datasets", "folders", "prepared", "standard_sets", "downloads", "matfile")
    for name in (*modules, "archives", "classes"):
        tree = ast.parse((package / f"{name}.py").read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in ("torch", "torchvision") for n in names), name
