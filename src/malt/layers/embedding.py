"""One embedding table per categorical field; id sequences look up the table of their field."""

from __future__ import annotations

import torch
from torch import nn

from malt.data.schema import Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError


class FieldEmbeddings(nn.Module):
    """Tables of `vocab.sizes[field]` rows (the vocab plus its out-of-vocabulary row) × d.

    Tables are kept separate (not one concatenated table) so that per-tensor gradient methods
    see the same parameter partition as the reference. Rows start N(0, 1), as in the reference.
    """

    def __init__(self, schema: Schema, vocab: VocabInfo, dim: int, *, sparse: bool = False):
        super().__init__()
        missing = [f for f in schema.field_names if f not in vocab.sizes]
        if missing:
            raise ConfigError(f"the vocab has no table size for fields {missing}")
        self.tables = nn.ModuleList(nn.Embedding(vocab.sizes[f], dim, sparse=sparse)
                                    for f in schema.field_names)
        self.sequence_table = [schema.field_names.index(s.shares) for s in schema.id_sequences]
        self.dim = dim

    def fields(self, sparse: torch.Tensor, order: list[int]) -> torch.Tensor:
        """Embeddings of the fields at `order`: sparse [B, F] int64 -> [B, len(order), d]."""
        return torch.stack([self.tables[i](sparse[:, i]) for i in order], dim=1)

    def sequences(self, seq: torch.Tensor) -> torch.Tensor:
        """Id sequences through their shared tables: seq [B, S, L] -> [B, S, L, d]."""
        return torch.stack([self.tables[t](seq[:, s]) for s, t in enumerate(self.sequence_table)],
                           dim=1)
