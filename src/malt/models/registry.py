"""Models by name: a class registers itself with `@register("name")`."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from malt.data.schema import Schema
from malt.data.task import Task
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError

if TYPE_CHECKING:
    from malt.models.config import ModelConfig
    from malt.models.model import MaltModel

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make the `MaltModel` subclass buildable as `name`."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name '{name}' is already registered by "
                             f"{_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtin() -> None:
    # Importing the package imports every built-in model module, which registers them.
    importlib.import_module("malt.models")


def model_names() -> list[str]:
    """Registered names, in registration order."""
    _load_builtin()
    return list(_REGISTRY)


def model_class(name: str) -> type:
    _load_builtin()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown model '{name}'{hint} (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def build_model(name: str, schema: Schema, vocab: VocabInfo, task: Task,
                config: ModelConfig | None = None) -> MaltModel:
    """A new model `name` for `task` on `schema`; `config` is a `ModelConfig` (default preset
    when None)."""
    return model_class(name)(schema, vocab, task, config)
