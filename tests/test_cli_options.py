"""cli/options.py: the option types the subcommands share and their one progress-bar factory."""

from __future__ import annotations

import argparse
import io

import pytest

from dcgan.cli.options import bar, positive_float, positive_int, positive_int_or


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_only_when_asked_and_stderr_is_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert bar(True, "decoding") is None  # a pipe or a log file: no frames in it
    monkeypatch.setattr("sys.stderr", _Tty())
    assert bar(False, "decoding") is None
    wrap = bar(True, "inception", unit="batch")
    assert list(wrap(range(3))) == [0, 1, 2]


def test_positive_numbers_and_a_word():
    assert positive_int("3") == 3 and positive_float("0.5") == 0.5
    assert positive_int_or("auto", None)("auto") is None and positive_int_or("auto", 0)("7") == 7
    for parse, text, message in [
        (positive_int, "2.0", "'2.0' is not an integer"),
        (positive_int, "0", "must be a positive integer, got 0"),
        (positive_float, "nan", "must be positive, got nan"),
        (positive_float, "x", "'x' is not a number"),
        (positive_int_or("auto", None), "-1", "must be 'auto' or a positive integer, got '-1'"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)
