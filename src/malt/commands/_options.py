"""Command-line flags generated from typed dataclasses, and their mapping back onto them.

Every field of an option dataclass is a flag: its name from the field (`batch_size` ->
`--batch-size`; the field's `flag` metadata gives another name, a positional argument's name
when it has no leading dashes, or None for a field no flag sets), its type and choices from the
annotation, its help from the field's docstring and its default. Values are read with the
field's type (`malt.typed_fields.parse_text`): a wrong one is a `ConfigError` naming flag,
value and type, and the closest choice where there are choices. A list takes its values after
the flag (at least one when the field may be None, which stands for "not given"); a positional
argument is one value (a list of one for a list field); a table takes repeated KEY=VALUE. A
list field whose `separator` metadata is set takes one text split at it (`--rules last,first`).
A list field whose `repeat` metadata is true takes one or more values after the flag, and the
flag may be repeated (`--keep a b`, `--keep a --keep b`: both keep a and b), or, positional,
one or more values. A field without a default is a required flag.

Two kinds of option sets:

* the run config, `RunConfig`'s sections (`add_run_options`): flags default to None (= not
  given), so a flag overrides the config file only when it is passed (`given_overrides`,
  `resolve_config`). The model is chosen by `--model` and `--release-defaults`;
  `--model-option KEY=VALUE` sets any field of the chosen model's config
  (`encoder.embed_dim=8`; checked against that model).
* a command's own options (`add_options`), read back into an instance by `read_options`; a
  flag that is not given leaves the field's default. A switch (`bool` defaulting to false) is
  a plain `--flag`.

`OPTION_SETS` holds every dataclass whose flags were generated (tests walk them). Every
flag of malt but `--config` and the model's (`--model`, `--release-defaults`,
`--model-option`) is a field of one, so a number's range is its field's (`PositiveInt`,
`Seed`, ...): `--batch-size 0` is refused like `train.batch_size = 0`, exit 3, naming the
flag, the value and what was expected.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union

from malt.config_files import merge_tables, read_key_value_file, tree_from_dotted_keys
from malt.errors import ConfigError
from malt.runs.config import RunConfig
from malt.typed_fields import build, check_value, field_docs, hints, parse_text

_DEST = "cfg__"
_OWN = "opt__"
OPTION_SETS: set[type] = set()
"""Every dataclass whose flags `add_run_options` or `add_options` generated."""


@dataclass(frozen=True)
class ConfigFlag:
    """One field of an option dataclass as a flag."""

    path: tuple[str, ...]
    """Where the value goes in the option tree, e.g. ("train", "lr")."""
    option: str
    """`--name`, or the name of a positional argument."""
    annotation: Any
    doc: str
    """The field's docstring."""
    default: Any
    namespace: str = _DEST
    """Prefix of the flag's destination: the run config's flags and a command's own options
    never share one (both may have a --seed)."""
    metavar: str | None = None
    separator: str | None = None
    """A list field's values come as one text split at it."""
    required: bool = False
    repeat: bool = False
    """A list field's flag may be repeated, its values adding up."""

    @property
    def help(self) -> str:
        """The docstring and, when the field has one, its default."""
        shown = self.default not in (None, [], {}, ()) and not self.switch
        default = self.separator.join(map(str, self.default)) \
            if shown and self.separator is not None else self.default
        return self.doc + (f" (default: {default})" if shown else "")

    @property
    def dest(self) -> str:
        return self.namespace + "__".join(self.path)

    @property
    def positional(self) -> bool:
        return not self.option.startswith("-")

    @property
    def switch(self) -> bool:
        """A command's own option that is off unless its flag is given."""
        return self.namespace == _OWN and self.annotation is bool and self.default is False


def config_flags(cls: type = RunConfig, prefix: tuple[str, ...] = (),
                 namespace: str = _DEST) -> Iterator[ConfigFlag]:
    """A flag for every field of `cls` and of its section dataclasses (fields whose `flag`
    metadata is None excepted)."""
    docs, types_ = field_docs(cls), hints(cls)
    for f in dataclasses.fields(cls):
        option = f.metadata.get("flag", _option(f.name))
        if option is None:
            continue
        annotation = types_[f.name]
        if dataclasses.is_dataclass(annotation):
            yield from config_flags(annotation, (*prefix, f.name), namespace)
        else:
            missing = f.default is dataclasses.MISSING and \
                f.default_factory is dataclasses.MISSING
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                else None if missing else f.default
            yield ConfigFlag((*prefix, f.name), option, annotation, docs.get(f.name, ""),
                             default, namespace, f.metadata.get("metavar"),
                             f.metadata.get("separator"), missing and namespace == _OWN,
                             f.metadata.get("repeat", False))


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _given(annotation: Any) -> Any:
    """`annotation` without its `| None` (None stands for "not given")."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]
    return annotation


def _add(group: argparse._ActionsContainer, flag: ConfigFlag, help: str | None = None) -> None:
    annotation = _given(flag.annotation)
    origin = typing.get_origin(annotation)
    text = {"help": flag.help if help is None else help}
    if flag.positional:
        nargs = None if origin not in (list, tuple) else "+" if flag.repeat else 1
        group.add_argument(flag.dest, metavar=_metavar(flag), nargs=nargs, **text)
        return
    text["dest"] = flag.dest
    if flag.required:
        text["required"] = True
    if flag.switch:
        group.add_argument(flag.option, action="store_true", default=None, **text)
    elif annotation is bool:
        group.add_argument(flag.option, action=argparse.BooleanOptionalAction, **text)
    elif origin in (list, tuple) and flag.repeat:
        group.add_argument(flag.option, action="extend", nargs="+", metavar=_metavar(flag),
                           **text)
    elif origin in (list, tuple) and flag.separator is None:
        optional = type(None) in typing.get_args(flag.annotation)  # given: at least one value
        group.add_argument(flag.option, nargs="+" if optional else "*", metavar=_metavar(flag),
                           **text)
    elif origin is dict:
        group.add_argument(flag.option, action="append", metavar="KEY=VALUE", **text)
    else:
        group.add_argument(flag.option, metavar=_metavar(flag), **text)


def _metavar(flag: ConfigFlag) -> str:
    """The metadata's, else `{a,b}` for choices (of a single value), else the name in
    capitals."""
    if flag.metavar is not None:
        return flag.metavar
    value = _given(flag.annotation)
    if typing.get_origin(value) in (list, tuple):
        value = typing.get_args(value)[0]
    if typing.get_origin(value) is Literal and flag.separator is None:
        return "{" + ",".join(map(str, typing.get_args(value))) + "}"
    return flag.option.lstrip("-").replace("-", "_").upper()


def add_run_options(parser: argparse._ActionsContainer,
                    only: Iterable[tuple[str, ...]] | None = None, *, model: bool = True,
                    skip: Iterable[tuple[str, ...]] = ()) -> None:
    """The flags of a training run in groups by section (all optional; they override
    --config), less those of the config paths (or sections) in `skip`, which the command
    sets itself; or only those of the config paths `only` (such as ("train",
    "batch_size")), ungrouped and without the run config's default (the caller's own settings
    apply when the flag is not given); the model's flags with `model`."""
    OPTION_SETS.add(RunConfig)
    if only is not None:
        keep = set(only)
        for flag in config_flags():
            if flag.path in keep:
                _add(parser, flag, help=flag.doc)
    else:
        parser.add_argument("--config", help="TOML/YAML/JSON file with [data] [task] [train] "
                                              "[model]; flags override it")
        groups: dict[str, argparse._ActionsContainer] = {}
        skipped = set(skip)
        for flag in config_flags():
            if flag.path in skipped or flag.path[:1] in skipped:
                continue
            section = flag.path[0] if len(flag.path) > 1 else ""
            if section not in groups:
                groups[section] = parser.add_argument_group(section) if section else parser
            _add(groups[section], flag)
    if not model:
        return
    group = parser.add_argument_group("model")
    group.add_argument("--model", dest=_DEST + "model", metavar="NAME",
                       help="registered model name (see `malt models`)")
    group.add_argument("--release-defaults", dest=_DEST + "release_defaults",
                       action=argparse.BooleanOptionalAction,
                       help="start the model from the public release's settings (see "
                            "malt.models.config)")
    add_model_option_flag(group)


def add_model_option_flag(parser: argparse._ActionsContainer) -> None:
    """`--model-option KEY=VALUE`, repeatable."""
    parser.add_argument("--model-option", dest=_DEST + "model_option", action="append",
                        metavar="KEY=VALUE",
                        help="set a field of the model's config, e.g. encoder.embed_dim=8 or "
                             "experts=4 (repeatable; checked against the chosen model)")


def add_options(parser: argparse._ActionsContainer, cls: type, *,
                only: Iterable[str] | None = None, skip: Iterable[str] = ()) -> None:
    """The flags of the fields of the option dataclass `cls` (or of the fields `only`, less
    those in `skip`); `read_options` reads them back."""
    OPTION_SETS.add(cls)
    keep, skipped = None if only is None else set(only), set(skip)
    for flag in config_flags(cls, namespace=_OWN):
        if (keep is None or flag.path[0] in keep) and flag.path[0] not in skipped:
            _add(parser, flag)


def read_options(args: argparse.Namespace, cls: type, **values: Any) -> Any:
    """An instance of `cls` from the flags `add_options` made (a flag not given leaves its
    field's default) and `values` (the fields no flag sets)."""
    given: dict[str, Any] = {}
    for flag in config_flags(cls, namespace=_OWN):
        value = getattr(args, flag.dest, None)
        if value is not None:
            _put(given, flag.path, _read(flag, value))
    return build(cls, {**given, **values}, "")


def given_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config tree of the flags that were actually passed, each value read with its
    field's type."""
    tree: dict[str, Any] = {}
    for flag in config_flags():
        value = getattr(args, flag.dest, None)
        if value is not None:
            _put(tree, flag.path, _read(flag, value))
    model: dict[str, Any] = {}
    for key in ("model", "release_defaults"):
        value = getattr(args, _DEST + key, None)
        if value is not None:
            model["name" if key == "model" else key] = value
    options = {}
    for item in getattr(args, _DEST + "model_option", None) or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-option expects KEY=VALUE, got '{item}'")
        options[key.strip()] = parse_text(f"--model-option {key.strip()}", text, Any)
    model = merge_tables(model, tree_from_dotted_keys(options))
    if model:
        tree["model"] = model
    return tree


def _read(flag: ConfigFlag, value: Any) -> Any:
    """A flag's raw value (text, list of texts, KEY=VALUE items) with its field's type."""
    annotation = _given(flag.annotation)  # the shape; a single value is read as the field is
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return value
    if origin in (list, tuple):
        element = typing.get_args(annotation)[0]
        if flag.separator is not None:
            value = [v.strip() for v in value.split(flag.separator) if v.strip()]
        values = [parse_text(flag.option, v, element) for v in value]
        check_value(flag.option, values, annotation)  # the length of a fixed-length tuple
        return values
    if origin is dict:
        out = {}
        for item in value:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{flag.option} expects KEY=VALUE, got '{item}'")
            out[key.strip()] = parse_text(f"{flag.option} {key.strip()}", text,
                                          typing.get_args(annotation)[1])
        return out
    return parse_text(flag.option, value, flag.annotation)


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> RunConfig:
    """`base` (e.g. a command's defaults), then the config file, then the flags."""
    tree = dict(base or {})
    if getattr(args, "config", None):
        tree = merge_tables(tree, read_key_value_file(args.config))
    tree = merge_tables(tree, given_overrides(args))
    return RunConfig.from_dict(tree, source=getattr(args, "config", None) or "flags")
