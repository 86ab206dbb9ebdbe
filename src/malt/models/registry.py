"""Models by name. Each model file registers its class with its config class and its traits:

    @register("mmoe", MMoEConfig, Traits("MMoE", "multi-task"))
    class MMoE(MultiTaskModel): ...

so everything malt knows about a model (how to build it, what it can be told, how it is shown
and trained) is in that one file.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from malt.data.schema import Schema
from malt.data.task import Task
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError

if TYPE_CHECKING:
    from malt.models.config import ModelConfig
    from malt.models.model import MaltModel

Family = Literal["single-attribution", "multi-task", "knowledge-transfer", "incomplete-labels"]


@dataclass(frozen=True)
class Traits:
    """What a model is, for the code that trains, tunes and reports it."""

    display_name: str
    """How tables and reports name it (e.g. `MoAE`)."""
    family: Family
    """`knowledge-transfer` models fuse the auxiliary towers into the main one, and the MAC
    paper trains them with the Cartesian view; `incomplete-labels` models are the KAML setting's
    (one task per conversion action)."""
    takes_cat: bool = True
    """Can train a head for the Cartesian view `cat`."""
    uses_aux: bool = True
    """Has heads for the auxiliary views. A run of a model without them (BASE) may list none:
    its run config refuses them up front rather than train views it has no head for."""
    gated_experts: bool = False
    """Mixes experts with learned gates (a mixture-of-experts backbone)."""
    aux_weight: float | None = None
    """Default λ; None: the reference λ of the target (MAC protocol). Models of the KAML
    setting weigh every action alike (1): every action is one of their tasks, and KAML's term
    weights γ and 1 − γ (see `malt.losses.terms`) balance its loss at λ = 1."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, class, config class and traits."""

    name: str
    model: type[MaltModel]
    config: type[ModelConfig]
    traits: Traits

    def make_config(self, options: dict[str, Any] | None = None, *,
                    release_defaults: bool = False) -> ModelConfig:
        """This model's config from a tree of options (see `ModelConfig.from_options`)."""
        return self.config.from_options(options, release_defaults=release_defaults)

    def build(self, schema: Schema, vocab: VocabInfo, task: Task,
              config: ModelConfig | None = None) -> MaltModel:
        return self.model(schema, vocab, task, config)


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, config: type[ModelConfig], traits: Traits
             ) -> Callable[[type], type]:
    """Class decorator: make the `MaltModel` subclass buildable as `name`."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name].model is not cls:
            raise ValueError(f"model name '{name}' is already registered by "
                             f"{_REGISTRY[name].model.__name__}")
        cls.name, cls.config_class, cls.traits = name, config, traits
        _REGISTRY[name] = ModelSpec(name, cls, config, traits)
        return cls

    return decorate


def _load_builtin() -> None:
    # Importing the package imports every built-in model module, which registers them.
    importlib.import_module("malt.models")


def model_names() -> list[str]:
    """Registered names, in registration order."""
    _load_builtin()
    return list(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    _load_builtin()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown model '{name}'{hint} (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def build_model(name: str, schema: Schema, vocab: VocabInfo, task: Task,
                config: ModelConfig | None = None) -> MaltModel:
    """A new model `name` for `task` on `schema`; `config` is an instance of the model's config
    class (its defaults when None)."""
    return model_spec(name).build(schema, vocab, task, config)
