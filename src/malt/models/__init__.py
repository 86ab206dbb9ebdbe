"""Models of multi-attribution learning, by name: base, shared_bottom, mmoe, ple, home, natal,
moae; and for incomplete multi-label data (KAML setting): single_task, star, taml, kaml. Each
file holds one model: its class, its config class and its traits (`register`). Build one with
`build_model(name, schema, vocab, task, config)`."""

from malt.models.config import ModelConfig
from malt.models.model import MaltModel, Outputs
from malt.models.registry import ModelSpec, Traits, build_model, model_names, model_spec, register

# Imported for their registration, in the order `model_names()` lists them.
from malt.models import (  # noqa: E402, F401  isort: skip
    base, shared_bottom, mmoe, ple, home, natal, moae, single_task, star, taml, kaml)

__all__ = ["MaltModel", "ModelConfig", "ModelSpec", "Outputs", "Traits", "build_model",
           "model_names", "model_spec", "register"]
