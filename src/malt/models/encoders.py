"""Feature encoders by name: the replaceable part of a model that turns a batch into x [B, D].

A model's config names its encoder in its `encoder` block (`[model.encoder] name = "..."`, or
`--model-option encoder.name=...`); the other keys of the block are the options of that
encoder's config class. malt's own encoder, `target_attention` (embeddings, target attention
over the id sequences, SimTier over the float sequences, fusion; `malt.layers.FeatureEncoder`),
is every built-in model's default. Another package adds an encoder with `register_encoder`
(exported as `malt.register_encoder`), found through the entry-point group `malt.encoders`
(see `malt.models.plugins`) the first time its name is asked for.

What an encoder is (`Encoder`): an `nn.Module` built as `build(schema, vocab, config)`, with
    out_dim                 D, the width of its output
    inputs                  the batch keys it reads, in the order an exported model takes them
    forward(batch)          batch -> x [B, D]
    embedding_parameters()  its embedding tables, if any (trained at `embedding_lr_scale` x lr;
                            their gradients are sparse when `config.sparse_embeddings` is set)
and, for STAR (whose auxiliary network reads the ad side of a row), optionally
    ad_dim                  W, the width of its ad-side block
    ad_block(batch, x)      batch and its output x -> the ad and context fields' and bags'
                            embeddings [B, W] (`Schema.ad_side_indices`)
Every built-in encoder has both; STAR refuses an encoder without them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from malt.models.plugins import ENCODER_GROUP, Registry
from malt.typed_fields import PositiveInt, validate

if TYPE_CHECKING:
    import torch
    from torch import nn

    from malt.data.schema import Schema
    from malt.data.vocab import VocabInfo

DEFAULT_ENCODER = "target_attention"


@dataclass(frozen=True)
class EncoderConfig:
    """What every encoder's config holds; an encoder's own config class adds its options."""

    name: str = field(default="", init=False)
    """The registered encoder this config is for: each encoder's config class declares it as
    `name: str = field(default="<its name>", init=False)`; a config file gives it to choose
    the encoder (`[model.encoder] name = ...`)."""
    embed_dim: PositiveInt = 16
    """Width d of every embedding (and the squeeze-excitation group width the experts default
    to)."""
    sparse_embeddings: bool = False
    """Embedding tables produce sparse gradients (set by `train.table_optimizer`)."""

    RELEASE: ClassVar[dict[str, Any]] = {}
    """What `release_defaults` changes in this encoder, as a table of options."""

    def __post_init__(self) -> None:
        validate(self, "model.encoder")


class Encoder(Protocol):
    """What a model needs of its encoder (see the module docstring)."""

    out_dim: int
    inputs: tuple[str, ...]

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def embedding_parameters(self) -> list[nn.Parameter]: ...


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: its name, how it is built, its config class."""

    name: str
    build: Callable[[Schema, VocabInfo, EncoderConfig], Encoder]
    config: type[EncoderConfig]
    source: str | None = None
    """The package that provides it (`name version`); None for malt's own."""


ENCODERS: Registry[EncoderSpec] = Registry("encoder", ENCODER_GROUP, "malt.models.model",
                                         "register_encoder")
"""The built-in encoder is registered beside the model base class that builds it."""


def register_encoder(name: str, build: Callable[[Schema, VocabInfo, EncoderConfig], Encoder],
                     config: type[EncoderConfig]) -> None:
    """Make an encoder available as `name` in any model's `encoder` block.

    Args:
        name: the encoder's name; `config`'s `name` field must default to it.
        build: `build(schema, vocab, config)` -> an `Encoder` (a class or a function).
        config: its config class, an `EncoderConfig` subclass whose fields are its options.

    Registering the same encoder again does nothing; another one under a taken name raises a
    `ValueError`.
    """
    if not (isinstance(config, type) and issubclass(config, EncoderConfig)):
        raise TypeError(f"encoder '{name}': config {config!r} is not a subclass of "
                        "malt.models.EncoderConfig")
    default = {f.name: f.default for f in dataclasses.fields(config)}["name"]
    if default != name:
        raise ValueError(f"encoder '{name}': {config.__name__}.name defaults to {default!r}; "
                         f"declare `name: str = field(default={name!r}, init=False)`")
    ENCODERS.add(name, EncoderSpec(name, build, config))


def encoder_names() -> list[str]:
    """Registered names: malt's own, then those of the installed plugins (loaded for it)."""
    return ENCODERS.names()


def encoder_spec(name: str) -> EncoderSpec:
    """The registered encoder `name`, loading the plugin of that name when needed; an unknown
    name is a `ConfigError` naming the closest known one."""
    return ENCODERS.get(name, "model.encoder.name")
