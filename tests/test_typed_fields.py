"""Typed configuration values: what files and flags may hold for each annotation."""

from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.errors import ConfigError
from malt.typed_fields import build, check_value, coerce, describe, field_docs, parse_text, validate


@dataclass(frozen=True)
class Inner:
    width: int = 4
    """Width of the thing."""


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    """The name,
    over two lines."""
    rate: float = 0.5
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    dims: tuple[int, ...] = (1, 2)
    tags: list[str] = field(default_factory=list)
    limit: float | None = None
    weights: dict[str, float] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        validate(self, "outer")


@pytest.mark.parametrize("value, annotation", [
    ("fast", float), ("4096", int), ("abc", int), ("no", bool), ("false", bool), (1, bool),
    (True, int), (True, float), ("first", list[str]), ([1, "a"], list[int]), (1.5, int),
    ("c", Literal["a", "b"]), (None, int), ({"a": "x"}, dict[str, float]), ((1,), tuple[int, int]),
])
def test_values_of_the_wrong_type_are_refused(value, annotation):
    with pytest.raises(ConfigError) as error:
        check_value("train.key", value, annotation)
    message = str(error.value)
    assert message.startswith(f"train.key = {value!r}: expected ")
    assert describe(annotation) in message


@pytest.mark.parametrize("value, annotation, expected", [
    (3, float, 3.0), (3, int, 3), (False, bool, False), ([1, 2], tuple[int, ...], (1, 2)),
    ((1, 2), list[int], [1, 2]), (None, float | None, None), (2, float | None, 2.0),
    ("b", Literal["a", "b"], "b"), ([["x"], ["y", "z"]], tuple[tuple[str, ...], ...],
                                   (("x",), ("y", "z"))),
])
def test_values_of_the_right_type_are_kept_or_widened(value, annotation, expected):
    out = coerce(value, annotation)
    assert out == expected and type(out) is type(expected)


def test_describe_says_the_expected_type_in_words():
    assert describe(float) == "a number"
    assert describe(list[str]) == "a list of strings"
    assert describe(tuple[int, ...] | None) == "a list of integers or nothing (null)"
    assert describe(Literal["cpu", "cuda"]) == "one of 'cpu', 'cuda'"
    assert describe(dict[str, float]) == "a table of numbers"


@pytest.mark.parametrize("text, annotation, expected", [
    ("0.01", float, 0.01), ("4096", int, 4096), ("false", bool, False), ("[32, 16]",
                                                                           tuple[int, ...],
                                                                           (32, 16)),
    ("3", str, "3"), ("cuda", Literal["cpu", "cuda"], "cuda"), ("none", int | None, None),
])
def test_text_from_the_command_line_is_read_as_its_type(text, annotation, expected):
    assert parse_text("--x", text, annotation) == expected


@pytest.mark.parametrize("text, annotation", [("fast", float), ("no", bool), ("1.5", int)])
def test_text_of_the_wrong_type_names_flag_value_and_type(text, annotation):
    with pytest.raises(ConfigError, match=f"--x = '{text}': expected {describe(annotation)}"):
        parse_text("--x", text, annotation)


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_an_integer_is_read_back_from_its_text(n):
    assert parse_text("k", str(n), int) == n
    assert parse_text("k", str(n), float) == float(n)


def test_build_checks_nested_tables_and_unknown_keys():
    built = build(Outer, {"rate": 1, "dims": [3], "inner": {"width": 8}}, "")
    assert built == Outer(rate=1.0, dims=(3,), inner=Inner(8))
    with pytest.raises(ConfigError, match=r"inner.width = '8': expected an integer"):
        build(Outer, {"inner": {"width": "8"}}, "")
    with pytest.raises(ConfigError, match="unknown key 'rat'; did you mean 'rate'"):
        build(Outer, {"rat": 1}, "")
    with pytest.raises(ConfigError, match="inner must be a table"):
        build(Outer, {"inner": 3}, "")


def test_objects_built_in_python_are_checked_too():
    with pytest.raises(ConfigError, match="outer.mode = 'c'"):
        Outer(mode="c")
    assert Outer(dims=[4, 5]).dims == (4, 5)


def test_field_docs_are_the_strings_under_the_fields():
    assert field_docs(Outer) == {"name": "The name, over two lines."}
    assert field_docs(Inner) == {"width": "Width of the thing."}
