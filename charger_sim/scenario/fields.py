"""Build frozen dataclasses from YAML mappings, with errors naming the file and the key path."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import ScenarioError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    names = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}
    if tp in names:
        return names[tp]
    args = typing.get_args(tp)
    if args:
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, path: str, key: str) -> Any:
    """Check ``value`` against a simple annotation (float, int, bool, str, X | None)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, path, key)
            except ScenarioError:
                continue
        raise ScenarioError(path, key, f"expected {_type_name(tp)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ScenarioError(path, key, f"expected {_type_name(tp)}, got {value!r}")


def build(cls: type[T], data: Any, path: str, key: str, *, skip: frozenset[str] = frozenset()) -> T:
    """Instantiate dataclass ``cls`` from mapping ``data`` (unknown keys and bad values are errors)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ScenarioError(path, key, f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name in skip:
            continue
        sub = f"{key}.{name}" if key else str(name)
        if name not in fields:
            allowed = ", ".join(sorted(set(fields) | skip))
            raise ScenarioError(path, sub, f"unknown key; expected one of: {allowed}")
        kwargs[name] = coerce(value, hints[name], path, sub)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise ScenarioError(path, key or "(top level)", str(err)) from err
