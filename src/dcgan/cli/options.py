"""What the subcommands share: argparse types for option values and the progress-bar factory.

cli/__init__.py registers the subcommands; they import these helpers from here, not from it.
"""

from __future__ import annotations

import argparse
import sys


def positive_int_or(word: str, value):
    """An argparse type: `word` (which parses to `value`) or a positive integer."""

    def parse(text: str):
        if text == word:
            return value
        try:
            return positive_int(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"must be '{word}' or a positive integer, got {text!r}"
            ) from None

    return parse


def positive_int(text: str) -> int:
    return _positive(text, int, "an integer", "a positive integer")


def positive_float(text: str) -> float:
    return _positive(text, float, "a number", "positive")


def _positive(text: str, parse, noun: str, must: str):
    """`parse(text)` when it is above 0 (NaN is not), else argparse's error in a few words."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be {must}, got {value}")
    return value


def bar(enabled: bool, what: str, unit: str = "img"):
    """A wrapper `it -> tqdm(it)` on stderr, or None when off or stderr is not a terminal.

    Only on a terminal: in a pipe or a log file a bar's frames would fill it.
    """
    from ..tracking import is_terminal

    if not enabled or not is_terminal(sys.stderr):
        return None
    from tqdm import tqdm

    return lambda it: tqdm(it, desc=what, unit=unit, leave=False, file=sys.stderr)
