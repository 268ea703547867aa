"""Checks shared by every module: a value among allowed choices, what counts as an int or a number, and
plain data of a declared kind (`as_kind`: the chapters' -p parameters).

A leaf: it imports nothing from the package, so models, data, configs and the trainers can all use it.
"""
from __future__ import annotations

import math
import types
import typing

__all__ = ["as_kind", "check_choice", "describe", "is_int", "is_number", "MAX_ITEMS", "MAX_TEXT", "NotOfKind", "shown"]


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


# ------------------------------------------------------------------------------ literals of a declared kind
# A kind is a Python type annotation over plain data: bool, int, float (ints accepted), str, None,
# list[K], dict[str, K] and unions (K1 | K2). Values are bounded so that a parameter stays data a reader
# can see: finite numbers, integers of at most 15 digits, short printable strings, at most MAX_ITEMS items.
MAX_TEXT = 400
MAX_ITEMS = 1000
MAX_INT = 10**15
_NAMES = {bool: ("True or False", "True or False"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: (f"a string of at most {MAX_TEXT} printable characters", "strings"), type(None): ("None", "None")}


class NotOfKind(ValueError):
    """A value is not a literal of the declared kind; the message says how (e.g. "has [0]='x', a str")."""


def describe(kind, plural: bool = False) -> str:
    """What `kind` allows, in words: 'a list of numbers', 'None or a dict of string keys to integers'."""
    if kind in _NAMES:
        return _NAMES[kind][plural]
    args = typing.get_args(kind)
    if typing.get_origin(kind) is list:
        return ("lists of " if plural else f"a list of at most {MAX_ITEMS} ") + describe(args[0], plural=True)
    if typing.get_origin(kind) is dict:
        return ("dicts" if plural else "a dict") + " of string keys to " + describe(args[1], plural=True)
    words = [describe(option, plural) for option in args]
    return ", ".join(words[:-1]) + " or " + words[-1]


def as_kind(value, kind, where: str = ""):
    """`value` as plain data of `kind` (tuples become lists); raise NotOfKind saying what is wrong.

    `where` is the position inside the outer value ('[0]', "['adam'][1]"), for the message.
    """
    if isinstance(kind, types.UnionType):
        return _as_union(value, kind, where)
    origin = typing.get_origin(kind)
    if origin is list and isinstance(value, (list, tuple)):
        return _as_list(value, typing.get_args(kind)[0], where)
    if origin is dict and isinstance(value, dict):
        return _as_dict(value, typing.get_args(kind)[1], where)
    if origin is None and _is_instance(value, kind):
        _check_bounds(value, where)
        return value
    raise NotOfKind(_what(value, where))


def _is_instance(value, kind) -> bool:
    if kind is float:
        return is_int(value) or isinstance(value, float)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _as_union(value, kind, where: str):
    """The first option `value` fits; else the complaint of the option of its own container type."""
    complaints = []
    for option in typing.get_args(kind):
        try:
            return as_kind(value, option, where)
        except NotOfKind as error:
            if typing.get_origin(option) is {list: list, tuple: list, dict: dict}.get(type(value)):
                complaints.append(str(error))  # a list's complaint about its items beats "is a list"
    raise NotOfKind(complaints[0] if complaints else _what(value, where))


def _as_list(value, item_kind, where: str) -> list:
    if len(value) > MAX_ITEMS:
        raise NotOfKind(_what(value, where, f"a {type(value).__name__} of {len(value)} items"))
    return [as_kind(item, item_kind, f"{where}[{index}]") for index, item in enumerate(value)]


def _as_dict(value, value_kind, where: str) -> dict:
    if len(value) > MAX_ITEMS:
        raise NotOfKind(_what(value, where, f"a dict of {len(value)} items"))
    result = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise NotOfKind(f"has{' ' + where if where else ''} a key {shown(key)}, {_article(type(key).__name__)}")
        _check_bounds(key, f"{where} key {shown(key)}")
        result[key] = as_kind(item, value_kind, f"{where}[{key!r}]")
    return result


def _check_bounds(value, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise NotOfKind(_what(value, where, "not finite"))
    if is_int(value) and abs(value) > MAX_INT:
        raise NotOfKind(_what(value, where, "beyond 10**15 in magnitude"))
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise NotOfKind(_what(value, where, f"a string of {len(value)} characters"))
    if isinstance(value, str) and not value.isprintable():
        raise NotOfKind(_what(value, where, "a string with a newline or another unprintable character"))


def _what(value, where: str, problem: str | None = None) -> str:
    """'is a list' at the top, "has [0]='x', a str" inside."""
    problem = problem or ("None" if value is None else _article(type(value).__name__))
    return f"has {where}={shown(value)}, {problem}" if where else f"is {problem}"


def _article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def shown(value, width: int = 60) -> str:
    """repr(value), cut to `width` characters: a message stays one short line."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
