"""Encoders over flat field embeddings: a DNN, DCN-V2 and DIN (the `dnn`, `dcnv2` and `din`
encoders of `malt.models`)."""

from __future__ import annotations

import torch
from torch import nn

from malt.data.schema import Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.layers.cross import CrossNetwork
from malt.layers.embedding import bag_inputs
from malt.layers.fields import FieldInputs, concatenated
from malt.layers.interest import InterestPooling
from malt.layers.mlp import MLP


class FlatEncoder(nn.Module):
    """What the three share: `FieldInputs` and the `Encoder` interface over it."""

    out_dim: int

    def __init__(self, schema: Schema, vocab: VocabInfo, dim: int, *, simtier_bins: int,
                 sparse: bool):
        super().__init__()
        self.features = FieldInputs(schema, vocab, dim, simtier_bins=simtier_bins,
                                    sparse=sparse)
        if self.features.flat_dim == 0:
            raise ConfigError(f"schema '{schema.name}' gives the model no input features")
        self.ad_order = schema.ad_side_indices()
        self.ad_dim = sum(self.features.embeddings.widths[i] for i in self.ad_order)
        """Width of `ad_block`."""

    @property
    def inputs(self) -> tuple[str, ...]:
        """The batch keys `forward` reads (see `FieldInputs.inputs`)."""
        return self.features.inputs

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The embedding tables (trained at a higher learning rate)."""
        return self.features.embedding_parameters()

    def ad_block(self, batch: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The ad and context fields' and bags' embeddings side by side, [B, ad_dim]. The
        output `x` mixes them with the rest (an MLP, a cross network, a norm), so they are
        looked up again: a few rows per field, next to the encoder's own work."""
        if not self.ad_order:
            return x.new_zeros(x.shape[0], 0)
        return torch.cat(self.features.embeddings.lookup(
            self.ad_order, batch["sparse"], *bag_inputs(batch, self.features.has_bags)), dim=1)


class DNNEncoder(FlatEncoder):
    """x = MLP([fields; mean of each id sequence; SimTier; numeric]), D = the last width.

    Args:
        hidden: the MLP's widths (at least one).
        activation_name: its activation (see `malt.layers.mlp.Activation`).
        dropout: its dropout after every layer.
    """

    def __init__(self, schema: Schema, vocab: VocabInfo, *, dim: int = 16,
                 hidden: tuple[int, ...] = (256, 128), activation_name: str = "relu",
                 dropout: float = 0.0, simtier_bins: int = 32, sparse: bool = False):
        super().__init__(schema, vocab, dim, simtier_bins=simtier_bins, sparse=sparse)
        self.mlp = MLP(self.features.flat_dim, hidden, activation_name, dropout)
        self.out_dim = self.mlp.out_dim

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch -> x [B, hidden[-1]]."""
        return self.mlp(self.features.flat(batch))


class DCNv2Encoder(FlatEncoder):
    """DCN-V2 over x_0 = [fields; mean of each id sequence; SimTier; numeric], of width D_0.

    `parallel`: x = [Cross(x_0); Deep(x_0)], D = D_0 + deep[-1] (D_0 without a deep part);
    `stacked`: x = Deep(Cross(x_0)), D = deep[-1] (D_0 without a deep part). Cross is
    `malt.layers.CrossNetwork`, Deep an MLP.

    Args:
        cross_layers: cross layers L.
        rank: None for full-rank cross weights, else their rank.
        structure: `parallel` or `stacked`.
        deep: the deep MLP's widths (may be empty).
        activation_name: the deep MLP's activation.
        dropout: the deep MLP's dropout.
    """

    def __init__(self, schema: Schema, vocab: VocabInfo, *, dim: int = 16,
                 cross_layers: int = 3, rank: int | None = None, structure: str = "parallel",
                 deep: tuple[int, ...] = (256, 128), activation_name: str = "relu",
                 dropout: float = 0.0, simtier_bins: int = 32, sparse: bool = False):
        super().__init__(schema, vocab, dim, simtier_bins=simtier_bins, sparse=sparse)
        width = self.features.flat_dim
        self.cross = CrossNetwork(width, cross_layers, rank)
        self.deep = MLP(width, deep, activation_name, dropout) if deep else None
        self.parallel = structure == "parallel"
        if self.deep is None:
            self.out_dim = width
        else:
            self.out_dim = width + self.deep.out_dim if self.parallel else self.deep.out_dim

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch -> x [B, D]."""
        x0 = self.features.flat(batch)
        crossed = self.cross(x0)
        if self.deep is None:
            return crossed
        if self.parallel:
            return torch.cat([crossed, self.deep(x0)], dim=1)
        return self.deep(crossed)


class DINEncoder(FlatEncoder):
    """DIN: each id sequence pooled by its relevance to its target, then fused.

    The target of an id sequence is the row's field whose embedding table the sequence shares
    (the candidate item for the purchased items). x = LayerNorm([fields; one
    `malt.layers.InterestPooling` output per id sequence; SimTier; numeric]) with learned
    affine, D = `FieldInputs.flat_dim` ((F + K + S) · d + W when every table is d wide).

    Args:
        attention: widths of each attention MLP's hidden layers.
        activation_name: their activation (see `malt.layers.mlp.Activation`).
    """

    def __init__(self, schema: Schema, vocab: VocabInfo, *, dim: int = 16,
                 attention: tuple[int, ...] = (80, 40), activation_name: str = "prelu",
                 simtier_bins: int = 32, sparse: bool = False):
        super().__init__(schema, vocab, dim, simtier_bins=simtier_bins, sparse=sparse)
        # A sequence and its target share a table, so they are always of one width.
        self.pooling = nn.ModuleList(InterestPooling(width, attention, activation_name)
                                     for width in self.features.embeddings.sequence_widths)
        self.out_dim = self.features.flat_dim
        self.norm = nn.LayerNorm(self.out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch -> x [B, D]."""
        parts = self.features(batch)
        pooled = [pool(parts.sequences[s], parts.fields[self.features.targets[s]],
                       parts.padding[:, s]) for s, pool in enumerate(self.pooling)]
        return self.norm(concatenated(parts, pooled))
