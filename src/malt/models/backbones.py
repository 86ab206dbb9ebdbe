"""The configs of the encoders over flat field embeddings: `dnn`, `dcnv2` and `din`.

Each is chosen in a model's `encoder` block (`[model.encoder] name = "dcnv2"`, or
`--model-option encoder.name=dcnv2`); its other keys are the fields below. The encoders
themselves are `malt.layers.DNNEncoder`, `DCNv2Encoder` and `DINEncoder`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from malt.data.schema import Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.layers import DCNv2Encoder, DINEncoder, DNNEncoder
from malt.layers.mlp import Activation
from malt.models.encoders import EncoderConfig
from malt.typed_fields import Between, PositiveInt

Dropout = Annotated[float, Between(0, 1, high_open=True)]
"""A dropout probability: 0 (none) up to, not including, 1."""


@dataclass(frozen=True)
class FlatEncoderConfig(EncoderConfig):
    """What the encoders over flat field embeddings share: the SimTier over the float
    sequences (channels summed, padded positions not counted)."""

    simtier_bins: PositiveInt = 32
    """Tiers of each SimTier histogram over [-1, 1] (width 2 / bins); even."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.simtier_bins % 2:
            raise ConfigError(f"model.encoder.simtier_bins must be even (tiers are symmetric "
                              f"around 0), got {self.simtier_bins}")


@dataclass(frozen=True)
class DNNConfig(FlatEncoderConfig):
    """`dnn`: an MLP over the concatenated embeddings (`malt.layers.DNNEncoder`)."""

    name: str = field(default="dnn", init=False)
    hidden_dims: tuple[PositiveInt, ...] = (256, 128)
    """The MLP's widths; the last is the encoder's output width D."""
    activation: Activation = "relu"
    """The MLP's activation."""
    dropout: Dropout = 0.0
    """Dropout after every layer of the MLP, while training."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.hidden_dims:
            raise ConfigError("model.encoder.hidden_dims must list at least one width")


@dataclass(frozen=True)
class DCNv2Config(FlatEncoderConfig):
    """`dcnv2`: DCN-V2's cross network beside or under a deep MLP
    (`malt.layers.DCNv2Encoder`)."""

    name: str = field(default="dcnv2", init=False)
    cross_layers: PositiveInt = 3
    """Cross layers L; the last holds crosses of the input up to degree L + 1."""
    cross_rank: PositiveInt | None = None
    """None: full-rank cross weights W (D_0 × D_0); r: W = U V^T of rank r."""
    structure: Literal["parallel", "stacked"] = "parallel"
    """`parallel`: [Cross(x_0); Deep(x_0)]; `stacked`: Deep(Cross(x_0))."""
    deep_dims: tuple[PositiveInt, ...] = (256, 128)
    """The deep MLP's widths; empty: the cross network alone."""
    activation: Activation = "relu"
    """The deep MLP's activation."""
    dropout: Dropout = 0.0
    """Dropout after every layer of the deep MLP, while training."""


@dataclass(frozen=True)
class DINConfig(FlatEncoderConfig):
    """`din`: each id sequence pooled by DIN's attention to its target item
    (`malt.layers.DINEncoder`)."""

    name: str = field(default="din", init=False)
    attention_dims: tuple[PositiveInt, ...] = (80, 40)
    """Hidden widths of each sequence's attention MLP (empty: a linear score)."""
    attention_activation: Activation = "prelu"
    """The attention MLP's activation."""


def dnn_encoder(schema: Schema, vocab: VocabInfo, config: DNNConfig) -> DNNEncoder:
    """The `dnn` encoder of `config`."""
    return DNNEncoder(schema, vocab, dim=config.embed_dim, hidden=config.hidden_dims,
                      activation_name=config.activation, dropout=config.dropout,
                      simtier_bins=config.simtier_bins, sparse=config.sparse_embeddings)


def dcnv2_encoder(schema: Schema, vocab: VocabInfo, config: DCNv2Config) -> DCNv2Encoder:
    """The `dcnv2` encoder of `config`."""
    return DCNv2Encoder(schema, vocab, dim=config.embed_dim, cross_layers=config.cross_layers,
                        rank=config.cross_rank, structure=config.structure,
                        deep=config.deep_dims, activation_name=config.activation,
                        dropout=config.dropout, simtier_bins=config.simtier_bins,
                        sparse=config.sparse_embeddings)


def din_encoder(schema: Schema, vocab: VocabInfo, config: DINConfig) -> DINEncoder:
    """The `din` encoder of `config`."""
    return DINEncoder(schema, vocab, dim=config.embed_dim, attention=config.attention_dims,
                      activation_name=config.attention_activation,
                      simtier_bins=config.simtier_bins, sparse=config.sparse_embeddings)
