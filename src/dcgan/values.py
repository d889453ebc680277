"""The checks of one config value, by type and range, each failing as a one-line UsageError that
names the option and shows the value (cut to fit one line). `dcgan.config` validates with them."""

from __future__ import annotations

import math
from typing import Any

from .errors import UsageError


def kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def show(value: Any) -> str:
    """A value for a one-line message: repr (so newlines stay escaped), cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_choice(name: str, value, choices) -> None:
    # bool is an int: True must not pass for channels 1
    if isinstance(value, bool) or value not in choices:
        plain = type(value) is type(choices[0]) and str(value).isprintable()
        shown = value if plain and len(str(value)) <= 40 else show(value)
        raise UsageError(f"--{name} {shown} is not one of {', '.join(map(str, choices))}")


def check_int(name: str, value, low: int, high: int, prefix: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(
            f"--{name} must be {prefix}an integer from {low} to {high}, got {show(value)}"
        )


def check_real(
    name: str, value, low: float, high: float, low_open: bool = False, high_open: bool = False
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low < value if low_open else low <= value)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise UsageError(f"--{name} must be a number in {interval}, got {show(value)}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise UsageError(f"--{name} must be true or false, got {show(value)}")


def check_text(name: str, value) -> None:
    """A name or path: a non-empty string that prints on one line."""
    if not isinstance(value, str) or not value or not value.isprintable():
        raise UsageError(f"--{name} must be a non-empty printable string, got {show(value)}")
