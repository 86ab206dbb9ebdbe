"""Models of multi-attribution learning, by name: base, shared_bottom, mmoe, ple, home, natal,
moae; and for incomplete multi-label data (KAML setting): single_task, star, taml, kaml. Each
file holds one model: its class, its config class and its traits (`register`). Build one with
`build_model(name, schema, vocab, task, config)`. Models and encoders of other packages register
with `register_model` and `register_encoder` (also `malt.register_model`,
`malt.register_encoder`) and are found through entry points (`malt.models.plugins`)."""

from malt.models.backbones import DCNv2Config, DINConfig, DNNConfig
from malt.models.building import build_model, build_spec
from malt.models.config import ModelConfig, TargetAttentionConfig
from malt.models.encoders import EncoderConfig, encoder_names, encoder_spec, register_encoder
from malt.models.model import MaltModel, Outputs
from malt.models.registry import (
    ModelSpec,
    Traits,
    model_names,
    model_spec,
    register,
    register_model,
)

# Imported for their registration, in the order `model_names()` lists them.
from malt.models import (  # noqa: E402, F401  isort: skip
    base, shared_bottom, mmoe, ple, home, natal, moae, single_task, star, taml, kaml)

__all__ = ["DCNv2Config", "DINConfig", "DNNConfig", "EncoderConfig", "MaltModel", "ModelConfig",
           "ModelSpec", "Outputs", "TargetAttentionConfig", "Traits", "build_model", "build_spec",
           "encoder_names", "encoder_spec", "model_names", "model_spec", "register",
           "register_encoder", "register_model"]
