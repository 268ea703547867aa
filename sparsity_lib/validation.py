"""Checks shared by every module: a value among allowed choices, and what counts as an int or a number.

A leaf: it imports nothing from the package, so models, data, configs and the trainers can all use it.
"""
from __future__ import annotations

import math

__all__ = ["check_choice", "is_int", "is_number"]


def check_choice(parameter: str, value, allowed) -> None:
    """Raise ValueError naming `parameter`, the bad `value` and the allowed values unless `value` is one."""
    if value not in allowed:
        raise ValueError(f"{parameter}={value!r} is not supported; allowed values: {', '.join(map(str, allowed))}")


def is_int(value) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite int or float (not a bool, a string, NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
