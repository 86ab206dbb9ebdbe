"""Models and encoders from other packages, found through Python entry points.

A package makes its model known to malt by naming it in the entry-point group `malt.models`
(an encoder: `malt.encoders`) of its `pyproject.toml`:

    [project.entry-points."malt.models"]
    my_model = "my_package.model"

The entry point's name is the name the model is asked for by (`malt train --model my_model`);
its value is the module (or an object in it) whose import registers it with
`malt.register_model` (`malt.register_encoder`). Nothing is imported before a name is looked up
that no built-in model has, or the models are listed; a config file or a run directory only
ever holds a name, never a path to import.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from dataclasses import replace
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, Protocol, TypeVar

from malt.errors import ConfigError

log = logging.getLogger(__name__)

MODEL_GROUP = "malt.models"
ENCODER_GROUP = "malt.encoders"


def plugins(group: str) -> dict[str, EntryPoint]:
    """The entry points of `group` by name, sorted by name; a name two installed packages
    claim is refused naming both."""
    found: dict[str, EntryPoint] = {}
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        if entry.name in found and found[entry.name].value != entry.value:
            raise ConfigError(f"two installed packages register '{entry.name}' in the "
                              f"entry-point group '{group}': {describe(found[entry.name])} and "
                              f"{describe(entry)}; uninstall one")
        found[entry.name] = entry
    return found


def describe(entry: EntryPoint) -> str:
    """`'name = value' of package P 1.0` for messages."""
    dist = getattr(entry, "dist", None)
    package = f" of package {dist.name} {dist.version}" if dist is not None else ""
    return f"'{entry.name} = {entry.value}'{package}"


def source(entry: EntryPoint) -> str:
    """What provides `entry`: its package and version, else its value."""
    dist = getattr(entry, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else entry.value


class Spec(Protocol):
    """What a registry holds: a dataclass with the package it comes from."""

    source: str | None


S = TypeVar("S", bound=Spec)


class Registry(Generic[S]):
    """`kind`s by name: malt's own, registered when the module `builtin` is imported, then
    those of the installed packages' entry points in `group`, each loaded when its name is first
    asked for (or the names are listed)."""

    def __init__(self, kind: str, group: str, builtin: str, register: str):
        self.kind, self.group, self.builtin, self.register = kind, group, builtin, register
        self.article = "an" if kind[0] in "aeiou" else "a"
        self._specs: dict[str, S] = {}

    def add(self, name: str, spec: S) -> None:
        """Register `spec` as `name`: again the same spec does nothing, another one under a taken
        name raises a `ValueError`."""
        known = self._specs.get(name)
        if known is not None and replace(known, source=None) != spec:
            by = f" by the package {known.source}" if known.source else " by malt"
            raise ValueError(f"{self.kind} name '{name}' is already taken{by}")
        self._specs.setdefault(name, spec)

    def names(self) -> list[str]:
        """Registered names, malt's own first, every installed plugin loaded."""
        importlib.import_module(self.builtin)
        for name, entry in plugins(self.group).items():
            if name not in self._specs:
                self._load(entry)
        return list(self._specs)

    def get(self, name: str, key: str | None = None) -> S:
        """The spec of `name`, loading the plugin of that name when no spec has it; an unknown
        name is a `ConfigError` (prefixed by the config `key` it was given as) naming the
        closest known one."""
        importlib.import_module(self.builtin)
        if name not in self._specs:
            entry = plugins(self.group).get(name)
            if entry is not None:
                self._load(entry)
        if name not in self._specs:
            known = [*self._specs, *(n for n in plugins(self.group) if n not in self._specs)]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            prefix = f"{key} = {name!r}: " if key else ""
            raise ConfigError(f"{prefix}unknown {self.kind} '{name}'{hint} (known: "
                              f"{', '.join(known)}); {self.article} {self.kind} of another "
                              f"package is known once that package is installed with an entry "
                              f"point '{name}' in the group '{self.group}'")
        return self._specs[name]

    def _load(self, entry: EntryPoint) -> None:
        """Import the plugin `entry`; what it registers records its package as its source. A
        plugin that fails to import, or imports without registering its name, is a
        `ConfigError` naming it."""
        before = set(self._specs)
        try:
            entry.load()
        except Exception as exc:  # whatever a third party's import raises, said in one line
            log.debug("loading plugin %s", entry.name, exc_info=True)
            raise ConfigError(f"the {self.kind} plugin {describe(entry)} (entry-point group "
                              f"'{entry.group}') failed to load: {type(exc).__name__}: {exc}"
                              ) from exc
        if entry.name not in self._specs:
            raise ConfigError(f"the {self.kind} plugin {describe(entry)} loaded but registered "
                              f"no {self.kind} named '{entry.name}' (its module must call "
                              f"malt.{self.register}('{entry.name}', ...))")
        for name in set(self._specs) - before:
            self._specs[name] = replace(self._specs[name], source=source(entry))
