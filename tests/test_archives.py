"""Zip archives as --data (issue 24): read in place, labelled by class subfolders or
stylegan2-ada's dataset.json, hostile entries refused in one line each, the same cache and skip
rules as folders."""

from __future__ import annotations

import io
import json
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error, run_dcgan
from dcgan import archives
from dcgan.datasets import load_folder, load_source, require_labels
from dcgan.errors import DataError, UsageError


def _png(value: int, size: int = 12) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (value, 255 - value, 7)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", method) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return path


def _load(path, tmp_path, **kw):
    return load_source(str(path), 16, None, tmp_path / "cache", **kw)


def test_class_subfolders_in_a_zip_match_the_same_folder(tmp_path):
    members = {
        f"pets/{cls}/{i}.png": _png(40 * c + i)
        for c, cls in enumerate(["dog", "cat"])
        for i in range(3)
    }
    members["pets/cat/broken.png"] = b"\x89PNG not really"
    members["pets/cat/notes.txt"] = b"not an image: passed over"
    members["__MACOSX/pets/cat/._0.png"] = b"resource fork"
    data = _load(_zip(tmp_path / "pets.zip", members), tmp_path)
    assert data.images.shape == (6, 3, 16, 16) and data.name == "pets"
    assert data.class_names == ("cat", "dog") and data.num_classes == 2  # sorted
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]  # aligned with the kept images
    assert data.skipped == ["pets/cat/broken.png"] and data.source["kind"] == "zip"
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(tmp_path / "pets.zip").extractall(
        folder, [m for m in members if "MAC" not in m]
    )
    same = load_folder(folder, 16, cache_dir=tmp_path / "cache")
    assert np.array_equal(same.images, data.images)  # the same decoder, the same rule
    assert same.class_names == data.class_names and np.array_equal(same.labels, data.labels)
    again = _load(tmp_path / "pets.zip", tmp_path)
    assert again.from_cache and again.class_names == ("cat", "dog")
    assert again.labels.tolist() == data.labels.tolist() and again.skipped == data.skipped


def test_stylegan_dataset_json_labels(tmp_path):
    names = [f"00000/img{i:08d}.png" for i in range(4)]
    members = {n: _png(50 * i) for i, n in enumerate(names)}
    labels = [[n, label] for n, label in zip(names, [2, 0, 2, [1]])]  # [1]: a one-element vector
    raw = json.dumps({"labels": labels}).encode()
    data = _load(_zip(tmp_path / "sg.zip", members | {"dataset.json": raw}), tmp_path)
    assert data.labels.tolist() == [2, 0, 2, 1] and data.class_names == ("0", "1", "2")
    # an edited dataset.json is a new cache key: the labels change with it
    raw = json.dumps({"labels": [[n, 0] for n in names]}).encode()
    data = _load(_zip(tmp_path / "sg.zip", members | {"dataset.json": raw}), tmp_path)
    assert not data.from_cache and data.labels.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "meta, found",
    [
        ({"labels": None}, "labels: null"),
        ({"labels": [["00000/a.png", 1]]}, "no label for 1 of its 2 images (e.g. 00000/b.png)"),
        ({"labels": [["00000/a.png", 1], ["00000/b.png", -3]]}, "not class numbers"),
        ({"labels": [["00000/a.png", [0, 1]], ["00000/b.png", [1, 0]]]}, "not class numbers"),
        ({"labels": [["00000/a.png", 1], ["00000/b.png", 10**12]]}, "not class numbers"),
        ("{not json", "cannot be read"),
    ],
)
def test_unusable_dataset_json_is_unlabelled_with_its_reason(tmp_path, meta, found):
    raw = meta.encode() if isinstance(meta, str) else json.dumps(meta).encode()
    members = {"00000/a.png": _png(1), "00000/b.png": _png(2), "dataset.json": raw}
    data = _load(_zip(tmp_path / "sg.zip", members), tmp_path)
    assert len(data) == 2 and data.labels is None and data.class_names is None
    with pytest.raises(UsageError) as e:
        require_labels(data, "sg.zip")
    assert str(e.value).startswith("--conditional needs labels: sg.zip has none (a zip archive")
    assert found in str(e.value) and "\n" not in str(e.value)


def _symlink(z: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z.writestr(info, target)


def test_hostile_entries_are_refused_one_line_each(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "BOMB_FLOOR", 1 << 20)
    path = tmp_path / "hostile.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("cls/ok.png", _png(9))
        z.writestr("../escape.png", _png(1))
        z.writestr("/etc/absolute.png", _png(2))
        z.writestr("cls\\windows.png", _png(3))
        _symlink(z, "cls/link.png", "/etc/passwd")
        z.writestr("cls/locked.png", _png(4))
        z.filelist[-1].flag_bits |= 0x1  # marked encrypted in the central directory
        z.writestr("cls/bomb.png", bytes(4 << 20))  # 4 MiB of zeros inflate over 1000x
        z.writestr("cls/lying.png", _png(5))
        z.filelist[-1].file_size = 10  # declares fewer bytes than it holds: CRC mismatch
        z.writestr("cls/bz.png", _png(6), compress_type=zipfile.ZIP_BZIP2)
    data = _load(path, tmp_path)
    assert len(data) == 1
    report = (data.cache_path / "skipped.txt").read_text().splitlines()[1:]
    reasons = dict(line.split("\t") for line in report)
    assert set(reasons) == {
        "../escape.png", "/etc/absolute.png", "cls\\windows.png", "cls/link.png",
        "cls/locked.png", "cls/bomb.png", "cls/lying.png", "cls/bz.png",
    }  # fmt: skip
    assert "climbs out" in reasons["../escape.png"] and "absolute" in reasons["/etc/absolute.png"]
    assert "symbolic link" in reasons["cls/link.png"] and "encrypted" in reasons["cls/locked.png"]
    assert "zip bomb" in reasons["cls/bomb.png"] and "BadZipFile" in reasons["cls/lying.png"]
    assert "compression method 12" in reasons["cls/bz.png"]
    monkeypatch.setattr(archives, "MAX_ENTRY_BYTES", 5)  # every entry now declares too much
    with pytest.raises(DataError, match="none of the 9 image entries in the zip archive"):
        _load(path, tmp_path)


def test_broken_and_empty_archives_are_one_line_errors(tmp_path):
    good = _zip(tmp_path / "good.zip", {"a.png": _png(1), "b.png": _png(2)})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[:-30])  # the central directory's end is gone
    with pytest.raises(DataError, match="is not a readable zip archive") as e:
        _load(cut, tmp_path)
    assert str(cut) in str(e.value) and "\n" not in str(e.value)
    empty = _zip(tmp_path / "empty.zip", {"readme.txt": b"hi", "sub/": b""})
    with pytest.raises(DataError, match=f"no images .* found in the zip archive {empty}$"):
        _load(empty, tmp_path)
    with pytest.raises(DataError, match="applies to the standard sets"):
        _load(good, tmp_path, split="test")
    data = _load(good, tmp_path)  # loose images: fine unconditionally, unlabelled for --conditional
    assert data.labels is None
    assert data.unlabelled_reason == "a zip archive with 2 loose images and no class subfolders"


def test_data_prepare_reads_a_zip_and_names_a_zip_without_images(tmp_path):
    members = {f"{c}/{i}.png": _png(i) for c in ("x", "y") for i in range(2)}
    _zip(tmp_path / "set.zip", members)
    done = run_dcgan(
        "data", "prepare", "set.zip", "--image-size", "28", "--no-progress", cwd=tmp_path
    )
    assert "data: set, 4 images, 3x28x28" in done.stdout
    _zip(tmp_path / "none.zip", {"a.txt": b"x"})
    proc = run_dcgan("data", "prepare", "none.zip", "--no-progress", cwd=tmp_path, check=False)
    assert_one_line_error(proc, 1, "no images")
    assert "none.zip" in proc.stderr
