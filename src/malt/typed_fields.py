"""Typed dataclass fields: values from config files and flags checked against annotations.

Configuration lives in dataclasses whose annotations say what each value is (`int`, `float`,
`bool`, `str`, `Literal[...]` choices, `X | None`, `list[X]`, `tuple[X, ...]`, `dict[str, X]`,
nested dataclasses, and any other class, which a value must be an instance of). A number's
valid values are part of its type: `Annotated[float, Positive]`, `Annotated[int, AtLeast(1)]`,
`Annotated[float, Between(0, 1)]` (a `Range`; a number with a range is finite unless the range
says otherwise, so NaN and infinity are refused). `build(cls, raw, where)` turns a table read
from a TOML/YAML/JSON file into an instance; a value of the wrong type or out of its range is a
`ConfigError` naming the key, the value and what was expected (a string is never taken for a
number, a flag or a list), an unknown key or choice names the closest valid one, and a missing
key without a default is named. `parse_text` reads a value typed on the command line.
`field_docs` returns the docstring written under each field, which the command line shows as
help.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import difflib
import inspect
import math
import textwrap
import tomllib
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from malt.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """The values a number may take, stated in its annotation: `Annotated[float, Range(...)]`.

    `low`/`high` bound it (None: unbounded), inclusively unless `low_open`/`high_open`; NaN is
    never in a range, and infinity only where `infinite` is set."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    infinite: bool = False

    def admits(self, value: float) -> bool:
        """Whether `value` lies in the range."""
        if isinstance(value, float) and (math.isnan(value) or
                                         (math.isinf(value) and not self.infinite)):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or
                                          (self.high_open and value == self.high))

    def words(self) -> str:
        """The range in words, e.g. '> 0', '>= 1', 'in [0, 1)', 'finite'."""
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            text = (f"in {'(' if self.low_open else '['}{low}, {high}"
                    f"{')' if self.high_open else ']'}")
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {low}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {high}"
        else:
            return "finite" if not self.infinite else "(inf allowed)"
        return text + (" (inf allowed)" if self.infinite else "")


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def AtLeast(low: float) -> Range:  # noqa: N802 - reads as a type: Annotated[int, AtLeast(1)]
    """`low` or more."""
    return Range(low=low)


def Above(low: float, *, infinite: bool = False) -> Range:  # noqa: N802
    """More than `low` (infinity too with `infinite`)."""
    return Range(low=low, low_open=True, infinite=infinite)


def Between(low: float, high: float, *, high_open: bool = False) -> Range:  # noqa: N802
    """From `low` to `high`, both included (`high` left out with `high_open`)."""
    return Range(low=low, high=high, high_open=high_open)


Positive = Above(0)
NonNegative = AtLeast(0)
Finite = Range()
"""Any finite value (a signed effect, an offset)."""
Probability = Between(0, 1)

SEED_LIMIT = 2**63
"""Seeds are below it (numpy and torch take 64-bit seeds; sums of seeds must stay signed)."""
Seed = Annotated[int, Between(0, SEED_LIMIT - 1)]
"""A random seed: 0 <= seed < 2**63."""
PositiveInt = Annotated[int, AtLeast(1)]
NonNegativeInt = Annotated[int, AtLeast(0)]
PositiveFloat = Annotated[float, Positive]
NonNegativeFloat = Annotated[float, NonNegative]
FiniteFloat = Annotated[float, Finite]
ProbabilityFloat = Annotated[float, Probability]


class _Mismatch(Exception):
    """A value does not fit its annotation (turned into a `ConfigError` with the key)."""


def ranges(annotation: Any) -> tuple[Range, ...]:
    """The `Range` markers of an `Annotated[...]` annotation (none for any other)."""
    if typing.get_origin(annotation) is not Annotated:
        return ()
    return tuple(m for m in annotation.__metadata__ if isinstance(m, Range))


def states_range(annotation: Any) -> bool:
    """Whether `annotation` or a type inside it (`X | None`, `tuple[X, ...]`) has a range."""
    return bool(ranges(annotation)) or any(states_range(a) for a in typing.get_args(annotation))


def describe(annotation: Any) -> str:
    """The expected type in words, e.g. 'a list of strings', 'one of "auto", "cpu"',
    'a number > 0'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _qualified(describe(args[0]), annotation)
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
        return f"a table with keys {_key_names(annotation)}"
    if origin is collections.abc.Callable:
        return "a function"
    return {int: "an integer", float: "a number", bool: "true or false",
            str: "a string"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _key_names(cls: type) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls) if f.init)


def _plural(annotation: Any) -> str:
    if dataclasses.is_dataclass(annotation):
        return f"tables with keys {_key_names(annotation)}"
    if typing.get_origin(annotation) is Literal:
        return "values from " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is Annotated:
        return _qualified(_plural(typing.get_args(annotation)[0]), annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return " or ".join(_plural(a) for a in typing.get_args(annotation))
    words = describe(annotation)
    for article in ("an ", "a "):
        if words.startswith(article):
            noun = words[len(article):]
            return noun if noun.endswith("s") or " " in noun else f"{noun}s"
    return words


def _qualified(words: str, annotation: Any) -> str:
    """`words` (e.g. 'a number') with the ranges of `annotation`: 'a number > 0', 'a finite
    number'."""
    for r in ranges(annotation):
        qualifier = r.words()
        if qualifier == "finite":
            article, _, noun = words.partition(" ")
            words = f"{article} finite {noun}" if article in ("a", "an") else f"finite {words}"
            words = words.replace("an finite", "a finite")
        else:
            words = f"{words} {qualifier}"
    return words


def coerce(value: Any, annotation: Any, key: str = "") -> Any:
    """`value` (as a file parser returns it) as the type `annotation`, or raise `_Mismatch`.

    Integers are accepted where a number is expected; nothing else is converted. A number with
    a `Range` must lie in it. A table read as a dataclass is checked key by key (errors name
    `key` and the path below it)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is Annotated:
        checked = coerce(value, args[0], key)
        if not all(r.admits(checked) for r in ranges(annotation)):
            raise _Mismatch
        return checked
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict):
            return build(annotation, value, key)
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
                return coerce(value, option, key)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _Mismatch
            return tuple(coerce(v, a, f"{key}[{i}]")
                         for i, (v, a) in enumerate(zip(value, args)))
        items = [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _Mismatch
        return {k: coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
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
    if origin is collections.abc.Callable:
        if callable(value):
            return value
        raise _Mismatch
    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        raise _Mismatch
    raise TypeError(f"annotation {annotation!r} is not supported")


def check_value(key: str, value: Any, annotation: Any) -> Any:
    """`coerce`, with a `ConfigError` naming `key`, the value and the expected type."""
    try:
        return coerce(value, annotation, key)
    except _Mismatch:
        raise ConfigError(f"{key} = {value!r}: expected {describe(annotation)}"
                          f"{_closest_choice(value, annotation)}") from None


def _closest_choice(value: Any, annotation: Any) -> str:
    """'; did you mean ...?' naming the choice of `annotation` closest to the text `value`."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [c for c in choices(annotation)
                                              if isinstance(c, str)], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def choices(annotation: Any) -> tuple[Any, ...]:
    """The `Literal` values `annotation` admits (inside `X | None`, `Annotated`); () for none."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return args
    if origin in (Union, types.UnionType, Annotated):
        return tuple(c for a in (args if origin is not Annotated else args[:1])
                     for c in choices(a))
    return ()


def parse_text(key: str, text: str, annotation: Any) -> Any:
    """A value typed on the command line: a number, a choice or a word as the annotation asks;
    lists, tables and `true`/`false` in TOML syntax (`[1, 2]`, `{a = 1}`)."""
    for candidate in _readings(text):
        try:
            return coerce(candidate, annotation, key)
        except _Mismatch:
            continue
    raise ConfigError(f"{key} = {text!r}: expected {describe(annotation)}"
                      f"{_closest_choice(text, annotation)}")


def _readings(text: str) -> list[Any]:
    """Ways to read `text`: as TOML (numbers, booleans, arrays, tables), then as plain text,
    then as a path."""
    readings = []
    try:
        readings.append(tomllib.loads(f"v = {text}")["v"])
    except tomllib.TOMLDecodeError:
        pass
    if text.lower() in ("none", "null"):
        readings.append(None)
    return [*readings, text, Path(text)]


@cache
def hints(cls: type) -> dict[str, Any]:
    """Resolved annotation of every field of the dataclass `cls` (`Annotated` kept)."""
    return typing.get_type_hints(cls, include_extras=True)


def validate(instance: Any, where: str) -> None:
    """Check every field of the dataclass `instance` against its type, converting in place
    where the type asks for it (a list given for a tuple, an integer for a float). Call it from
    `__post_init__` so that objects built in Python are checked like those read from files."""
    _check_fields(instance, where, [f.name for f in dataclasses.fields(instance)])


def check_ranges(instance: Any, where: str) -> None:
    """`validate` for the fields whose type states a range, only: for dataclasses that also hold
    live objects (a backend, a data set) that no file gives."""
    annotations = hints(type(instance))
    _check_fields(instance, where, [f.name for f in dataclasses.fields(instance)
                                    if states_range(annotations[f.name])])


def _check_fields(instance: Any, where: str, names: list[str]) -> None:
    for name in names:
        value = getattr(instance, name)
        annotation = hints(type(instance))[name]
        if dataclasses.is_dataclass(annotation) and isinstance(value, annotation):
            continue
        checked = check_value(f"{where}.{name}" if where else name, value, annotation)
        if checked is not value:
            object.__setattr__(instance, name, checked)


def build(cls: type, raw: Any, where: str) -> Any:
    """An instance of the dataclass `cls` from the table `raw` (nested dataclasses from nested
    tables); missing keys keep their defaults, and a missing key without one is an error."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'the file'} = {raw!r}: expected {describe(cls)}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    reject_unknown(raw, names, where)
    annotations = hints(cls)
    values = {}
    for name, value in raw.items():
        annotation = annotations[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(annotation):
            values[name] = value if isinstance(value, annotation) else \
                build(annotation, value, key)
        else:
            values[name] = check_value(key, value, annotation)
    for f in dataclasses.fields(cls):
        if f.init and f.name not in values and f.default is dataclasses.MISSING and \
                f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where + ': ' if where else ''}missing required key '{f.name}'")
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
