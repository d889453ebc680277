"""files.py: atomic writes, JSON lines strict on write and tolerant on read, and the name slug."""

from __future__ import annotations

import pytest

from dcgan import files


def test_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    files.atomic_write(path, b"good")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", boom)
    with pytest.raises(OSError):
        files.atomic_write(path, b"half")
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind


def test_jsonl_reader_skips_a_torn_last_line_and_repair_cuts_it(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "loss')
    assert files.read_jsonl(path) == [{"step": 1}, {"step": 2}]
    assert files.repair_jsonl(path)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert not files.repair_jsonl(path)  # nothing left to cut
    files.append_jsonl(path, {"step": 4})
    assert [r["step"] for r in files.read_jsonl(path)] == [1, 2, 4]
    assert files.read_jsonl(tmp_path / "absent.jsonl") == []
    (tmp_path / "odd.jsonl").write_text('[1]\nnull\n{"ok": 1}\nnot json\n')
    assert files.read_jsonl(tmp_path / "odd.jsonl") == [{"ok": 1}]


def test_slug_keeps_letters_digits_dash_underscore_and_cuts():
    assert files.slug("my data/set v2.1") == "my_data_set_v2_1"
    assert files.slug("x" * 50) == "x" * 40
    assert files.slug("x" * 50, limit=None) == "x" * 50
    assert files.slug("", "folder") == "folder" and files.slug("") == ""
    assert files.slug("ünï-cödé_ok") == "ünï-cödé_ok"  # str.isalnum: letters of any script stay
