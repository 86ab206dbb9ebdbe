"""Every option set a user writes: the run config's sections, the models' configs, the schema
file's tables and every command's options (`OPTION_SETS`: each dataclass whose flags the
command line generates, so a new one is walked as soon as a command uses it).

Each field has a docstring (a section, its class's), each field of a command's option set is a
flag (or says it is not one), and a value of the wrong type is refused in the one style: the
key or flag, the value, and the expected type.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from malt.cli import build_parser
from malt.commands._options import OPTION_SETS, add_options, config_flags, read_options
from malt.data.schema import SchemaFile
from malt.errors import ConfigError
from malt.experiments.options import StudyOptions
from malt.models import model_names, model_spec
from malt.runs.config import RunConfig
from malt.typed_fields import build, check_value, choices, describe, field_docs, hints

WRONG = ["text", 1.5, True, [1], {"key": 1}, None]
"""Values of every shape a file holds: each field refuses at least one."""
WRONG_TEXT = ["text", "1.5", "-1", "[1]"]
"""Texts typed after a flag: each flag that does not take any text refuses one."""


def command_option_sets() -> list[type]:
    build_parser()  # the commands generate their flags, registering their option sets
    return sorted(OPTION_SETS, key=lambda c: c.__qualname__)


def nested(cls: type) -> list[type]:
    """`cls` and every dataclass its fields' annotations hold, depth first."""
    found = [cls]

    def inside(annotation: Any) -> list[type]:
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            return [annotation]
        return [c for a in typing.get_args(annotation) for c in inside(a)]

    for f in dataclasses.fields(cls):
        for inner in inside(hints(cls)[f.name]):
            found += [c for c in nested(inner) if c not in found]
    return found


def option_sets() -> list[type]:
    roots = [*command_option_sets(), RunConfig, SchemaFile,
             *(model_spec(name).config for name in model_names())]
    out: list[type] = []
    for root in roots:
        out += [c for c in nested(root) if c not in out]
    return out


def test_the_walk_finds_every_family_of_option_sets():
    names = {c.__name__ for c in option_sets()}
    assert {"RunConfig", "DataConfig", "TaskConfig", "TrainConfig", "StudyOptions", "SchemaFile",
            "FieldGroups", "SharedTable", "IdSequenceEntry", "CategoricalField", "EncoderConfig",
            "MoAEConfig", "KAMLConfig", "AttributeOptions", "SimulateOptions",
            "KuaiRandOptions", "FetchOptions", "PredictOptions",
            "ExportOptions", "EvalOptions", "PrepareOptions", "TrainOptions",
            "UpgradeRunOptions", "KuaiRandSimOptions",
            "ModelsOptions", "CoverageOptions", "MaltOptions", "DemoOptions"} <= names
    assert {RunConfig, StudyOptions} <= set(command_option_sets())


def documented(cls: type, name: str) -> bool:
    annotation = hints(cls)[name]
    if dataclasses.is_dataclass(annotation):  # a section: its class says what it is
        return not (annotation.__doc__ or "").startswith(f"{annotation.__name__}(")
    return bool(field_docs(cls).get(name))


@pytest.mark.parametrize("cls", option_sets(), ids=lambda c: c.__name__)
def test_every_field_has_a_docstring(cls):
    assert [f.name for f in dataclasses.fields(cls) if f.init and not documented(cls, f.name)] \
        == []


def flag_destinations(parser: argparse.ArgumentParser) -> set[str]:
    dests = set()
    for action in parser._actions:
        dests.add(action.dest)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                dests |= flag_destinations(sub)
    return dests


@pytest.mark.parametrize("cls", command_option_sets(), ids=lambda c: c.__name__)
def test_every_field_of_a_commands_option_set_is_a_flag(cls):
    # The run config's flags override a config file; a command's own options are read back
    # whole (`read_options`): each kind has its own destinations.
    namespace = "cfg__" if cls is RunConfig else "opt__"
    expected = {flag.dest for flag in config_flags(cls, namespace=namespace)}
    assert expected and expected - flag_destinations(build_parser()) == set()
    unflagged = [f.name for f in dataclasses.fields(cls) if f.metadata.get("flag", "") is None]
    assert set(unflagged) <= {"model", "overrides"}  # set by flags of their own


def wrong_value(annotation: Any) -> Any:
    for value in WRONG:
        try:
            check_value("k", value, annotation)
        except ConfigError:
            return value
    raise AssertionError(f"{annotation} takes any value")


@pytest.mark.parametrize("cls", option_sets(), ids=lambda c: c.__name__)
def test_a_value_of_the_wrong_type_names_key_value_and_expected_type(cls):
    for f in dataclasses.fields(cls):
        if cls is RunConfig and f.name == "model":
            continue  # checked against the chosen model's config class (its own option set)
        if not f.init:
            continue  # not a key of this table: an encoder's `name` picks its config class
        annotation = hints(cls)[f.name]
        value = wrong_value(annotation)
        with pytest.raises(ConfigError) as info:
            build(cls, {f.name: value}, "")
        assert str(info.value).startswith(f"{f.name} = {value!r}: expected "
                                          f"{describe(annotation)}"), f.name


def required_arguments(cls: type, given: dict[str, str] | None = None) -> list[str]:
    """A valid value for every positional argument and required flag of `cls`'s flags (or the
    text `given` for it)."""
    out: list[str] = []
    for flag in config_flags(cls, namespace="opt__"):
        one = typing.get_args(flag.annotation)[0] \
            if typing.get_origin(flag.annotation) in (list, tuple) else flag.annotation
        value = str((choices(one) or ("x",))[0]) if flag.positional else "x"
        value = (given or {}).get(flag.option, value)
        out += [value] if flag.positional else [flag.option, value] if flag.required else []
    return out


def takes_any_text(annotation: Any) -> bool:
    """A text or path field, or a list of texts (with or without None)."""
    given = [a for a in typing.get_args(annotation) if a is not type(None)] \
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) else [annotation]
    return all(a in (str, Path) or typing.get_args(a)[:1] == (str,) for a in given)


def typed_options(cls: type) -> bool:
    """Whether a flag of `cls` takes a value that is not any text (texts and switches can't be
    wrong)."""
    return any(not (f.annotation is bool or takes_any_text(f.annotation))
               for f in config_flags(cls, namespace="opt__"))


@pytest.mark.parametrize("cls", [c for c in command_option_sets()
                                 if c is not RunConfig and typed_options(c)],
                         ids=lambda c: c.__name__)
def test_a_flag_of_the_wrong_type_names_flag_value_and_expected_type(cls):
    parser = argparse.ArgumentParser()
    add_options(parser, cls)
    typed_flags, checked = set(), set()
    for flag in config_flags(cls, namespace="opt__"):
        if flag.annotation is bool or takes_any_text(flag.annotation):
            continue
        typed_flags.add(flag.option)
        for text in WRONG_TEXT:
            args = parser.parse_args(required_arguments(cls, {flag.option: text})
                                     if flag.positional else
                                     [*required_arguments(cls), flag.option, text])
            try:
                read_options(args, cls)
            except ConfigError as error:
                assert str(error).startswith(f"{flag.option} = {text!r}: expected "), flag
                checked.add(flag.option)
                break
    assert typed_flags and checked == typed_flags


def test_the_option_sets_choices_load_no_torch():
    code = "import sys, malt.cli; malt.cli.build_parser(); sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@dataclasses.dataclass(frozen=True)
class Listed:
    """A list in one text and a required flag."""

    name: str
    """Required."""
    rules: tuple[typing.Literal["last", "first"], ...] = dataclasses.field(
        default=("last",), metadata={"separator": ","})
    """Comma-separated."""


def test_a_separated_list_is_one_text_and_a_flag_without_default_is_required(capsys):
    parser = argparse.ArgumentParser()
    add_options(parser, Listed)
    args = parser.parse_args(["--name", "n", "--rules", "first, last,"])
    assert read_options(args, Listed) == Listed(name="n", rules=("first", "last"))
    assert read_options(parser.parse_args(["--name", "n"]), Listed).rules == ("last",)
    with pytest.raises(ConfigError, match=r"^--rules = 'lats': expected one of .*'last'\?"):
        read_options(parser.parse_args(["--name", "n", "--rules", "first,lats"]), Listed)
    with pytest.raises(SystemExit):
        parser.parse_args(["--rules", "last"])
    assert "the following arguments are required: --name" in capsys.readouterr().err
    OPTION_SETS.discard(Listed)  # not a command's: the walks above stay the commands'


@dataclasses.dataclass(frozen=True)
class Repeated:
    """A list whose flag may be repeated."""

    keep: list[str] = dataclasses.field(default_factory=list, metadata={"repeat": True})
    """Repeatable."""


def test_a_repeatable_flag_takes_several_values_and_adds_up_its_repeats():
    parser = argparse.ArgumentParser()
    add_options(parser, Repeated)
    for argv in (["--keep", "a", "--keep", "b"], ["--keep", "a", "b"],
                 ["--keep", "a", "b", "--keep", "c"]):
        expected = ["a", "b", "c"][:len(argv) - argv.count("--keep")]
        assert read_options(parser.parse_args(argv), Repeated) == Repeated(keep=expected)
    assert read_options(parser.parse_args([]), Repeated).keep == []
    with pytest.raises(SystemExit):
        parser.parse_args(["--keep"])
    OPTION_SETS.discard(Repeated)


@dataclasses.dataclass(frozen=True)
class RepeatedPositional:
    """A positional list of one or more values."""

    paths: list[str] = dataclasses.field(metadata={"flag": "paths", "repeat": True})
    """One or more."""


def test_a_repeated_positional_takes_one_or_more_values():
    parser = argparse.ArgumentParser()
    add_options(parser, RepeatedPositional)
    assert read_options(parser.parse_args(["a", "b"]), RepeatedPositional).paths == ["a", "b"]
    with pytest.raises(SystemExit):
        parser.parse_args([])
    OPTION_SETS.discard(RepeatedPositional)
