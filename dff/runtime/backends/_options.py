"""Option values checked and converted against a constructor's type annotations.

``-O threads=4`` reaches a backend as the int 4, ``-O threads=abc`` as the string "abc"; the
annotation ``threads: int | None`` says which values fit. Supported annotations: ``int``,
``float``, ``bool``, ``str``, ``Path``, ``Literal[...]``, unions of them and ``None``; any other
annotation passes its value through unchecked.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class OptionError(ValueError):
    """An option value that does not fit the option's annotation; the message names both."""


class _Mismatch(Exception):
    """One alternative of a union did not take the value."""


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _describe(annotation: Any) -> str:
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(annotation))
    return {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        Path: "a path",
        type(None): "nothing (null)",
    }.get(annotation, str(annotation))


def _convert(annotation: Any, value: Any) -> Any:
    """``value`` as ``annotation`` (one alternative); _Mismatch if it does not fit."""
    if typing.get_origin(annotation) is Literal:
        if value in typing.get_args(annotation):
            return value
        raise _Mismatch
    if annotation is type(None):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        raise _Mismatch
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise _Mismatch
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if annotation is Path:
        if isinstance(value, (str, os.PathLike)) and str(value):
            return value
        raise _Mismatch
    return value  # an annotation this module does not know: the constructor checks it


def coerce_option(name: str, annotation: Any, value: Any) -> Any:
    """``value`` converted to fit ``annotation``; OptionError naming ``name`` and what it expects otherwise."""
    alternatives = _alternatives(annotation)
    # A union tries its exact types first, so "4" for ``int | str`` stays the string it is.
    ordered = sorted(alternatives, key=lambda a: not (isinstance(a, type) and type(value) is a))
    for alternative in ordered:
        try:
            return _convert(alternative, value)
        except _Mismatch:
            continue
    # None is a default, not something to suggest on the command line.
    expected = " or ".join(_describe(a) for a in alternatives if a is not type(None))
    raise OptionError(f"option {name} expects {expected}, got {value!r}")


def coerce_options(function: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked and converted against ``function``'s annotations (strings resolved in its module)."""
    hints = typing.get_type_hints(function)
    return {name: coerce_option(name, hints[name], value) if name in hints else value for name, value in options.items()}
