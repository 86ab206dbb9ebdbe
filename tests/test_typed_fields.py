"""Typed configuration values: what files and flags may hold for each annotation."""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.errors import ConfigError
from malt.typed_fields import (
    Above,
    AtLeast,
    Between,
    FiniteFloat,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ProbabilityFloat,
    Range,
    Seed,
    build,
    check_ranges,
    check_value,
    coerce,
    describe,
    field_docs,
    parse_text,
    states_range,
    validate,
)


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
    ({1: 2.0}, dict[str, float]),
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
    with pytest.raises(ConfigError, match=r"^inner = 3: expected a table with keys width$"):
        build(Outer, {"inner": 3}, "")


def test_objects_built_in_python_are_checked_too():
    with pytest.raises(ConfigError, match="outer.mode = 'c'"):
        Outer(mode="c")
    assert Outer(dims=[4, 5]).dims == (4, 5)
    assert Outer(inner={"width": 8}).inner == Inner(8)  # a table given for a nested dataclass
    with pytest.raises(ConfigError, match=r"^outer.inner.width = 'x': expected an integer$"):
        Outer(inner={"width": "x"})


@dataclass(frozen=True)
class Top:
    """A top-level config: its keys are named without a prefix."""

    rate: PositiveFloat = 1.0

    def __post_init__(self) -> None:
        validate(self, "")


def test_a_top_level_key_is_named_alone():
    with pytest.raises(ConfigError, match=r"^rate = 0: expected a number > 0$"):
        Top(rate=0)


def test_an_annotation_the_checks_do_not_know_is_a_programming_error():
    with pytest.raises(TypeError, match=r"^annotation 'int' is not supported$"):
        check_value("k", 1, "int")  # a string annotation that was never resolved


def test_field_docs_are_the_strings_under_the_fields():
    assert field_docs(Outer) == {"name": "The name, over two lines."}
    assert field_docs(Inner) == {"width": "Width of the thing."}


@pytest.mark.parametrize("annotation, words", [
    (PositiveFloat, "a number > 0"), (PositiveInt, "an integer >= 1"), (Seed,
     f"an integer in [0, {2**63 - 1}]"), (Annotated[float, Between(0, 1, high_open=True)],
                                          "a number in [0, 1)"),
    (FiniteFloat, "a finite number"), (Annotated[float, Above(0, infinite=True)],
                                        "a number > 0 (inf allowed)"),
    (tuple[NonNegativeFloat, ...] | None, "a list of numbers >= 0 or nothing (null)"),
    (PositiveInt | Literal["auto"], "an integer >= 1 or one of 'auto'"),
    (Annotated[float, Range(high=1.0)], "a number <= 1"),
    (Annotated[float, Range(low=0.5, high=2.0, high_open=True)], "a number in [0.5, 2)"),
    (Annotated[int, Range(high=3, high_open=True)], "an integer < 3"),
    (Annotated[float, Range(infinite=True)], "a number (inf allowed)"),
    (Annotated[int, Range()], "a finite integer"),
    (list[FiniteFloat], "a list of finite numbers"),
    (Annotated[float | None, Range()], "a finite number or nothing (null)"),
])
def test_describe_says_the_range(annotation, words):
    assert describe(annotation) == words


def test_the_range_helpers_bound_what_they_name():
    cases = [(AtLeast(1), [1, 1e9], [0.999, -1]),
             (Above(0), [1e-300, 5], [0, -1, math.inf]),
             (Above(0, infinite=True), [1e-300, math.inf], [0, -math.inf, math.nan]),
             (Between(0, 1), [0, 0.5, 1], [-1e-9, 1.0000001, math.inf]),
             (Between(0, 1, high_open=True), [0, 0.999], [1, -1e-9])]
    for bounded, inside, outside in cases:
        assert [bounded.admits(v) for v in inside + outside] == \
            [True] * len(inside) + [False] * len(outside), bounded


@pytest.mark.parametrize("value, annotation", [
    (0.0, PositiveFloat), (-1e-300, NonNegativeFloat), (math.nan, FiniteFloat),
    (math.inf, FiniteFloat), (math.inf, PositiveFloat), (-math.inf, Annotated[float, Above(
        0, infinite=True)]), (math.nan, Annotated[float, Above(0, infinite=True)]),
    (0, PositiveInt), (-1, Seed), (2**63, Seed), (1.0, Annotated[float, Between(
        0, 1, high_open=True)]), (1.5, ProbabilityFloat), ([1, 0], tuple[PositiveInt, ...]),
    ({"a": -1}, dict[str, NonNegativeFloat]), (0, PositiveInt | Literal["auto"]),
])
def test_values_out_of_their_range_are_refused(value, annotation):
    with pytest.raises(ConfigError, match=re.escape(f"k = {value!r}: expected "
                                                    f"{describe(annotation)}")):
        check_value("k", value, annotation)


@pytest.mark.parametrize("value, annotation", [
    (1e-300, PositiveFloat), (0, NonNegativeFloat), (-1e300, FiniteFloat), (1, PositiveInt),
    (0, Seed), (2**63 - 1, Seed), (0.0, Annotated[float, Between(0, 1, high_open=True)]),
    (math.inf, Annotated[float, Above(0, infinite=True)]), (1, ProbabilityFloat),
    ("auto", PositiveInt | Literal["auto"]),
])
def test_values_in_their_range_are_kept(value, annotation):
    assert check_value("k", value, annotation) == value


bounds = st.one_of(st.none(), st.floats(-1e6, 1e6))


@given(low=bounds, high=bounds, low_open=st.booleans(), high_open=st.booleans(),
       infinite=st.booleans(), value=st.floats(allow_nan=True, allow_infinity=True))
def test_a_range_admits_exactly_the_values_between_its_bounds(low, high, low_open, high_open,
                                                             infinite, value):
    bounded = Range(low, high, low_open, high_open, infinite)
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    finite = math.isfinite(value) or (infinite and not math.isnan(value))
    assert bounded.admits(value) == (above and below and finite)
    try:
        check_value("k", value, Annotated[float, bounded])
        accepted = True
    except ConfigError:
        accepted = False
    assert accepted == bounded.admits(value)


@given(st.integers(min_value=-2**70, max_value=2**70))
def test_a_seed_is_any_integer_from_0_below_2_to_the_63(n):
    try:
        assert parse_text("--seed", str(n), Seed) == n
        accepted = True
    except ConfigError:
        accepted = False
    assert accepted == (0 <= n < 2**63)


@dataclass
class Holder:
    """A dataclass that holds a live object beside a ranged number."""

    handle: object
    jobs: PositiveInt | None = None
    rate: float = 0.5

    def __post_init__(self) -> None:
        check_ranges(self, "holder")


def test_check_ranges_checks_only_the_ranged_fields():
    assert Holder(handle=lambda: None, jobs=2, rate="not checked").jobs == 2
    with pytest.raises(ConfigError, match="holder.jobs = 0: expected an integer >= 1"):
        Holder(handle=None, jobs=0)
    assert states_range(PositiveInt | None) and states_range(tuple[PositiveFloat, ...])
    assert not states_range(float) and not states_range(tuple[int, ...] | None)


def test_classes_and_functions_are_checked_by_instance():
    assert check_value("k", Path("x"), Path | None) == Path("x")
    assert check_value("k", len, Callable[..., int]) is len
    for value, annotation, words in [("x", Path, "Path"), (3, Callable[..., int], "a function")]:
        with pytest.raises(ConfigError, match=f"expected {words}"):
            check_value("k", value, annotation)


def test_a_choice_that_is_not_one_names_the_closest():
    with pytest.raises(ConfigError, match=r"^k = 'cdua': expected one of 'auto', 'cpu', "
                                          r"'cuda'; did you mean 'cuda'\?$"):
        check_value("k", "cdua", Literal["auto", "cpu", "cuda"])
    with pytest.raises(ConfigError, match=r"^--x = 'refs': expected a number >= 0 or one of "
                                          r"'ref'; did you mean 'ref'\?$"):
        parse_text("--x", "refs", NonNegativeFloat | Literal["ref"])
    with pytest.raises(ConfigError, match=r"^k = 'zzz': expected one of 'a', 'b'$"):
        check_value("k", "zzz", Literal["a", "b"])  # nothing close: no guess


@dataclass(frozen=True)
class Entry:
    name: str
    """Required: no default."""
    size: PositiveInt = 1


def test_a_missing_key_without_a_default_is_named():
    assert build(Entry, {"name": "a"}, "") == Entry("a")
    with pytest.raises(ConfigError, match=r"^entries: missing required key 'name'$"):
        build(Entry, {"size": 2}, "entries")


def test_tables_inside_lists_and_tables_are_named_by_their_path():
    annotation = tuple[Entry, ...] | dict[str, Entry]
    assert check_value("k", [{"name": "a"}], annotation) == (Entry("a"),)
    with pytest.raises(ConfigError, match=r"^k\[1\]: unknown key 'sise'; did you mean 'size'"):
        check_value("k", [{"name": "a"}, {"name": "b", "sise": 2}], annotation)
    with pytest.raises(ConfigError, match=r"^k.b.size = 0: expected an integer >= 1$"):
        check_value("k", {"b": {"name": "b", "size": 0}}, annotation)
    assert describe(Entry) == "a table with keys name, size"
    assert describe(list[Entry]) == "a list of tables with keys name, size"


def test_a_path_is_read_from_the_command_line():
    assert parse_text("--out", "runs/a", Path | None) == Path("runs/a")
    assert parse_text("--out", "runs/a", str | Path) == "runs/a"
    with pytest.raises(ConfigError, match="expected Path"):
        check_value("k", "runs/a", Path)  # a file's string is not taken for a path


def test_a_list_of_choices_is_described_by_its_values():
    assert describe(list[Literal["a", "b"]]) == "a list of values from 'a', 'b'"
