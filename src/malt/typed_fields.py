"""Typed dataclass fields: values from config files and flags checked against annotations.

Configuration lives in dataclasses whose annotations say what each value is (`int`, `float`,
`bool`, `str`, `Literal[...]` choices, `X | None`, `list[X]`, `tuple[X, ...]`, `dict[str, X]`,
nested dataclasses). `build(cls, raw, where)` turns a table read from a TOML/YAML/JSON file into
an instance; a value of the wrong type is a `ConfigError` naming the key, the value and the
expected type (a string is never taken for a number, a flag or a list), and an unknown key
names the closest valid one. `parse_text` reads a value typed on the command line. `field_docs`
returns the docstring written under each field, which the command line shows as help.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import textwrap
import tomllib
import types
import typing
from functools import cache
from typing import Any, Literal, Union

from malt.errors import ConfigError


class _Mismatch(Exception):
    """A value does not fit its annotation (turned into a `ConfigError` with the key)."""


def describe(annotation: Any) -> str:
    """The expected type in words, e.g. 'a list of strings', 'one of "auto", "cpu"'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "nothing (null)"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin in (list, tuple):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
        return f"a list of {_plural(args[0])}"
    if origin is dict:
        return f"a table of {_plural(args[1])}"
    if dataclasses.is_dataclass(annotation):
        return f"a table of {annotation.__name__} keys"
    return {int: "an integer", float: "a number", bool: "true or false",
            str: "a string"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _plural(annotation: Any) -> str:
    words = describe(annotation)
    for article in ("an ", "a "):
        if words.startswith(article):
            noun = words[len(article):]
            return noun if noun.endswith("s") or " " in noun else f"{noun}s"
    return words


def coerce(value: Any, annotation: Any) -> Any:
    """`value` (as a file parser returns it) as the type `annotation`, or raise `_Mismatch`.

    Integers are accepted where a number is expected; nothing else is converted."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict):
            return build(annotation, value, "")
        raise _Mismatch
    if annotation is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                return coerce(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _Mismatch
            return tuple(coerce(v, a) for v, a in zip(value, args))
        items = [coerce(v, args[0]) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _Mismatch
        return {k: coerce(v, args[1]) for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"annotation {annotation!r} is not supported")


def check_value(key: str, value: Any, annotation: Any) -> Any:
    """`coerce`, with a `ConfigError` naming `key`, the value and the expected type."""
    try:
        return coerce(value, annotation)
    except _Mismatch:
        raise ConfigError(f"{key} = {value!r}: expected {describe(annotation)}") from None


def parse_text(key: str, text: str, annotation: Any) -> Any:
    """A value typed on the command line: a number, a choice or a word as the annotation asks;
    lists, tables and `true`/`false` in TOML syntax (`[1, 2]`, `{a = 1}`)."""
    for candidate in _readings(text, annotation):
        try:
            return coerce(candidate, annotation)
        except _Mismatch:
            continue
    raise ConfigError(f"{key} = {text!r}: expected {describe(annotation)}")


def _readings(text: str, annotation: Any) -> list[Any]:
    """Ways to read `text`: as TOML (numbers, booleans, arrays, tables), then as plain text."""
    readings = []
    try:
        readings.append(tomllib.loads(f"v = {text}")["v"])
    except tomllib.TOMLDecodeError:
        pass
    if text.lower() in ("none", "null"):
        readings.append(None)
    readings.append(text)
    return readings


@cache
def hints(cls: type) -> dict[str, Any]:
    """Resolved annotation of every field of the dataclass `cls`."""
    return typing.get_type_hints(cls)


def validate(instance: Any, where: str) -> None:
    """Check every field of the dataclass `instance` against its type, converting in place
    where the type asks for it (a list given for a tuple, an integer for a float). Call it from
    `__post_init__` so that objects built in Python are checked like those read from files."""
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        annotation = hints(type(instance))[f.name]
        if dataclasses.is_dataclass(annotation) and isinstance(value, annotation):
            continue
        checked = check_value(f"{where}.{f.name}" if where else f.name, value, annotation)
        if checked is not value:
            object.__setattr__(instance, f.name, checked)


def build(cls: type, raw: Any, where: str) -> Any:
    """An instance of the dataclass `cls` from the table `raw` (nested dataclasses from nested
    tables); missing keys keep their defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table of keys, got {raw!r}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    reject_unknown(raw, names, where)
    annotations = hints(cls)
    values = {}
    for name, value in raw.items():
        annotation = annotations[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(annotation):
            values[name] = build(annotation, value, key)
        else:
            values[name] = check_value(key, value, annotation)
    return cls(**values)


def reject_unknown(raw: dict[str, Any], valid: list[str], where: str) -> None:
    """Raise on the first key of `raw` not in `valid`, naming the closest valid one."""
    for key in raw:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else \
                f"; valid keys: {', '.join(sorted(valid))}"
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}unknown key '{key}'{hint}")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of the dataclass `cls` (and its bases), as one
    line of text; fields without one are left out."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, after in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) \
                    and isinstance(after.value.value, str):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs
