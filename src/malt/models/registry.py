"""Models by name. Each built-in model file registers its class with its config class and its
traits:

    @register("mmoe", MMoEConfig, Traits("MMoE", "multi-task"))
    class MMoE(MultiTaskModel): ...

so everything malt knows about a model (how to build it, what it can be told, how it is shown
and trained) is in that one file. A model of another package registers the same way through
`register_model` (exported as `malt.register_model`) and is found through the entry-point
group `malt.models` (`malt.models.plugins`) the first time its name is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from malt.file_names import check_file_name
from malt.models.config import ModelConfig
from malt.models.model import MaltModel
from malt.models.plugins import MODEL_GROUP, Registry

if TYPE_CHECKING:
    from malt.data.schema import Schema
    from malt.data.task import Task
    from malt.data.vocab import VocabInfo

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
    shares_parameters: bool = True
    """Some parameters learn from the main and the auxiliary losses alike. A model whose views
    share none (SingleTask) gives an auxiliary view no way to help the main one: the
    auxiliary-task learning methods (`train.grad_method`) refuse it up front."""
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
    source: str | None = None
    """The package that provides it (`name version`); None for malt's own models."""

    def make_config(self, options: dict[str, Any] | None = None, *,
                    release_defaults: bool = False) -> ModelConfig:
        """This model's config from a tree of options (see `ModelConfig.from_options`)."""
        return self.config.from_options(options, release_defaults=release_defaults)

    def build(self, schema: Schema, vocab: VocabInfo, task: Task,
              config: ModelConfig | None = None) -> MaltModel:
        """The registered class built for `task`, unwrapped (`malt.models.building` wraps it
        for entire-space training)."""
        return self.model(schema, vocab, task, config)


MODELS: Registry[ModelSpec] = Registry("model", MODEL_GROUP, "malt.models", "register_model")


def register_model(name: str, model: type[MaltModel], config: type[ModelConfig] | None = None,
                   traits: Traits | None = None) -> type[MaltModel]:
    """Make the `MaltModel` subclass `model` buildable as `name` (`malt train --model name`).

    Args:
        name: the model's name in flags, config files, run directories and study cells; one
            file-name part (no `/`, `..` or leading `.`).
        model: the class, built as `model(schema, vocab, task, config)`.
        config: its config class, a `ModelConfig` subclass (default: `ModelConfig` itself);
            `--model-option` and `[model]` are checked against it.
        traits: what the model is for the code that trains and reports it (default: shown as
            `name`, a multi-task model with heads for the auxiliary views).
    Returns:
        `model`, with `name`, `config_class` and `traits` set on it.

    Registering the same model again does nothing; another one under a taken name raises a
    `ValueError`.
    """
    check_file_name(name, "model name")
    config = ModelConfig if config is None else config
    traits = Traits(name, "multi-task") if traits is None else traits
    if not (isinstance(model, type) and issubclass(model, MaltModel)):
        raise TypeError(f"model '{name}': {model!r} is not a subclass of malt.models.MaltModel")
    if not (isinstance(config, type) and issubclass(config, ModelConfig)):
        raise TypeError(f"model '{name}': config {config!r} is not a subclass of "
                        "malt.models.ModelConfig")
    if not isinstance(traits, Traits):
        raise TypeError(f"model '{name}': traits must be a malt.models.Traits, got "
                        f"{type(traits).__name__}")
    MODELS.add(name, ModelSpec(name, model, config, traits))
    model.name, model.config_class, model.traits = name, config, traits
    return model


def register(name: str, config: type[ModelConfig], traits: Traits
             ) -> Callable[[type], type]:
    """Class decorator: `register_model(name, cls, config, traits)`."""

    def decorate(cls: type) -> type:
        return register_model(name, cls, config, traits)

    return decorate


def model_names() -> list[str]:
    """Registered names: the built-in models in registration order, then those of the installed
    plugins (entry-point group `malt.models`), which are loaded for it."""
    return MODELS.names()


def model_spec(name: str) -> ModelSpec:
    """The registered model `name`, loading the plugin of that name when no model has it; an
    unknown name is a `ConfigError` naming the closest known one."""
    return MODELS.get(name)
