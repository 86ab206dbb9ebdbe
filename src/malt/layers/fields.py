"""Every input of a row as flat parts: field and sequence embeddings, SimTier, numbers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from malt.data.schema import Schema
from malt.data.vocab import VocabInfo
from malt.layers.embedding import FieldEmbeddings, bag_inputs
from malt.layers.numeric import register_numeric_buffers, standardise_numeric
from malt.layers.padding import SequencePadding
from malt.layers.simtier import SimTier


@dataclass
class FieldParts:
    """One batch's inputs, embedded and ready to pool or concatenate."""

    fields: list[torch.Tensor]
    """One embedding [B, d_f] per field, then one pooled [B, d_k] per bag, schema order."""
    sequences: list[torch.Tensor]
    """One [B, L, d_s] per id sequence (d_s: the width of the table it shares)."""
    padding: torch.Tensor | None
    """bool [B, S, L], True where id sequence s is padded (each has its own length); None
    without id sequences."""
    extra: torch.Tensor | None
    """[B, W]: SimTier over the float sequences (summed channels), then the standardised
    numeric columns; None when the schema has neither."""


class FieldInputs(nn.Module):
    """The inputs the flat encoders (`dnn`, `dcnv2`, `din`) build on.

    The embeddings are `malt.layers.FieldEmbeddings`; the float sequences go through SimTier
    (channels summed, padded positions not counted) and the numeric columns are standardised,
    both as in `malt.layers.FeatureEncoder`, whose padding rule holds too: each id sequence is
    padded where it holds its own `vocab.sequence_pad` row, and the float sequences where the
    first id sequence is (`malt.layers.padding.SequencePadding`).
    """

    def __init__(self, schema: Schema, vocab: VocabInfo, dim: int, *, simtier_bins: int = 32,
                 sparse: bool = False):
        super().__init__()
        self.embeddings = FieldEmbeddings(schema, vocab, dim, sparse=sparse)
        sequences = schema.id_sequences
        self.sequence_padding = SequencePadding(schema, vocab) if sequences else None
        self.targets = [schema.field_names.index(s.shares) for s in sequences]
        """Per id sequence, the position of the field whose table it shares: its target."""
        n_float = len(schema.float_sequences)
        self.simtier = SimTier(n_float, simtier_bins, "sum") if n_float else None
        self.n_numeric = register_numeric_buffers(self, schema, vocab)
        self.dim = dim
        self.has_bags = bool(schema.bags)
        self.n_sequences = len(sequences)
        self.extra_dim = (self.simtier.out_dim if self.simtier is not None else 0) \
            + self.n_numeric

    @property
    def inputs(self) -> tuple[str, ...]:
        """The batch keys `forward` reads: `sparse`, then `bags`, `bag_lengths`, `seq`,
        `dense_seq` and `numeric` when the schema has such columns."""
        present = {"sparse": True, "bags": self.has_bags, "bag_lengths": self.has_bags,
                   "seq": bool(self.n_sequences),
                   "dense_seq": self.simtier is not None, "numeric": bool(self.n_numeric)}
        return tuple(key for key, used in present.items() if used)

    @property
    def flat_dim(self) -> int:
        """Width of `flat`: Σ d_f over the fields and bags + Σ d_s over the sequences + W
        ((F + K + S) · d + W when every table is d wide)."""
        return sum(self.embeddings.widths) + sum(self.embeddings.sequence_widths) \
            + self.extra_dim

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The embedding tables."""
        return list(self.embeddings.parameters())

    def forward(self, batch: dict[str, torch.Tensor]) -> FieldParts:
        """batch (sparse [B, F], seq [B, S, L], dense_seq [B, C, L], numeric [B, N])
        -> its parts."""
        seq = batch["seq"] if self.n_sequences else None
        fields, sequences = self.embeddings(batch["sparse"], seq,
                                            *bag_inputs(batch, self.has_bags))
        padding = self.sequence_padding(seq) if self.sequence_padding is not None else None
        extra = []
        if self.simtier is not None:
            float_pad = None if self.sequence_padding is None \
                else self.sequence_padding.of_floats(padding)
            extra.append(self.simtier(batch["dense_seq"], float_pad))
        if self.n_numeric:
            extra.append(standardise_numeric(batch["numeric"], self.numeric_shift,
                                             self.numeric_scale, self.numeric_log1p))
        return FieldParts(fields, sequences, padding,
                          torch.cat(extra, dim=1) if extra else None)

    def flat(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The fields, the bags, the mean of each id sequence and the extra inputs side by
        side: [B, flat_dim]."""
        parts = self(batch)
        pooled = [mean_pooled(items, parts.padding[:, s])
                  for s, items in enumerate(parts.sequences)]
        return concatenated(parts, pooled)


def mean_pooled(items: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """items [B, L, d], pad bool [B, L] -> mean over the unpadded positions [B, d] (zero for a
    row without any)."""
    keep = (~pad).to(items.dtype)
    total = torch.bmm(keep.unsqueeze(1), items).squeeze(1)
    return total / keep.sum(1, keepdim=True).clamp_min(1.0)


def concatenated(parts: FieldParts, pooled: list[torch.Tensor]) -> torch.Tensor:
    """The fields, the bags, the pooled sequences and the extra inputs side by side:
    [B, flat_dim]."""
    blocks = [*parts.fields, *pooled]
    if parts.extra is not None:
        blocks.append(parts.extra)
    return torch.cat(blocks, dim=1)
