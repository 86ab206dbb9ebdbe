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
    A field and the sequences sharing its table are looked up in one call, so each table builds
    one gradient per step.
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

    def forward(self, sparse: torch.Tensor, seq: torch.Tensor | None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Look up every field and id sequence.

        Args:
            sparse: int64 [B, F] table rows of the fields, schema order.
            seq: int64 [B, S, L] table rows of the id sequences, or None when there are none.
        Returns:
            field embeddings [B, F, d] (schema order) and one [B, L, d] per id sequence
            (views into its table's lookup, not stacked: stacking would copy them; empty
            without sequences).
        """
        fields: list[torch.Tensor] = []
        seqs: list[torch.Tensor | None] = [None] * len(self.sequence_table)
        for t, table in enumerate(self.tables):
            shared = [s for s, owner in enumerate(self.sequence_table) if owner == t]
            if not shared:
                fields.append(table(sparse[:, t]))
                continue
            ids = torch.cat([sparse[:, t:t + 1], *(seq[:, s] for s in shared)], dim=1)
            # split, not indexing: its backward concatenates the parts' gradients, where each
            # indexed view's backward would zero-fill and add a gradient of the whole lookup.
            field, *sequences = table(ids).split([1] + [seq.shape[2]] * len(shared), dim=1)
            fields.append(field.squeeze(1))
            for s, rows in zip(shared, sequences):
                seqs[s] = rows
        return torch.stack(fields, dim=1), seqs
