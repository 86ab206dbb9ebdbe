"""One embedding table per categorical field and per bag; id sequences look up the table of
their field, bags are pooled (sum or mean) into one embedding each."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from malt.data.schema import Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError


class FieldEmbeddings(nn.Module):
    """Tables of `vocab.sizes[field]` rows (the vocab plus its out-of-vocabulary row) × d_field.

    Tables are kept separate (not one concatenated table) so that per-tensor gradient methods
    see the same parameter partition as the reference. Rows start N(0, 1), as in the reference.
    A field and the sequences sharing its table are looked up in one call, so each table builds
    one gradient per step. Each bag has its own table (`bag_tables`), pooled as `pooled_bag`.
    A table is `dim` wide unless the schema's `embed_dims` gives it a width of its own.
    """

    def __init__(self, schema: Schema, vocab: VocabInfo, dim: int, *, sparse: bool = False):
        super().__init__()
        missing = [f for f in schema.table_names if f not in vocab.sizes]
        if missing:
            raise ConfigError(f"the vocab has no table size for fields {missing}")
        self.widths = [schema.table_width(t, dim) for t in schema.table_names]
        """Width of each field's, then each bag's table: its `embed_dims` entry, else `dim`."""
        self.tables = nn.ModuleList(nn.Embedding(vocab.sizes[f], schema.table_width(f, dim),
                                                 sparse=sparse) for f in schema.field_names)
        self.bag_tables = nn.ModuleList(nn.Embedding(vocab.sizes[b.name],
                                                     schema.table_width(b.name, dim),
                                                     sparse=sparse) for b in schema.bags)
        self.bag_mean = tuple(b.pooling == "mean" for b in schema.bags)
        self.sequence_table = [schema.field_names.index(s.shares) for s in schema.id_sequences]
        self.sequence_widths = [self.widths[t] for t in self.sequence_table]
        """Width of each id sequence: that of the table it shares."""
        self.dim = dim

    def forward(self, sparse: torch.Tensor, seq: torch.Tensor | None,
                bags: torch.Tensor | None = None, bag_lengths: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Look up every field, bag and id sequence.

        Args:
            sparse: int64 [B, F] table rows of the fields, schema order.
            seq: int64 [B, S, L] table rows of the id sequences, or None when there are none.
            bags: int64 [B, K, M] table rows of the bags (None without bags), each row's
                first `bag_lengths` [B, K] positions holding its ids.
        Returns:
            one embedding [B, d_i] per field, then one pooled [B, d_k] per bag (schema
            order; widths as `widths`), and one [B, L, d_s] per id sequence (views into its
            table's lookup, not stacked: stacking would copy them; empty without sequences).
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
        for k, table in enumerate(self.bag_tables):
            fields.append(pooled_bag(table, bags[:, k], bag_lengths[:, k], self.bag_mean[k]))
        return fields, seqs

    def lookup(self, positions: list[int], sparse: torch.Tensor,
               bags: torch.Tensor | None = None, bag_lengths: torch.Tensor | None = None
               ) -> list[torch.Tensor]:
        """The embeddings at `positions` among the fields then the bags (the order `forward`
        returns them in), each [B, d_i]; inputs as `forward`'s."""
        n = len(self.tables)
        return [self.tables[i](sparse[:, i]) if i < n else
                pooled_bag(self.bag_tables[i - n], bags[:, i - n], bag_lengths[:, i - n],
                           self.bag_mean[i - n]) for i in positions]


def pooled_bag(table: nn.Embedding, ids: torch.Tensor, lengths: torch.Tensor, mean: bool
               ) -> torch.Tensor:
    """The sum (or mean) of the embeddings of each row's first `lengths` [B] ids of `ids`
    [B, M]: [B, d], zero for an empty bag.

    A masked sum over a padded lookup: in eager mode `F.embedding_bag` with per-sample
    weights (one fused gather-and-sum, forward and backward; BENCHMARKS.md, "batches with
    bags"), and while exporting a lookup and a batched product, so that the ONNX and
    TorchScript files hold plain gather and matmul operators.
    """
    keep = (torch.arange(ids.shape[1], device=ids.device) < lengths.unsqueeze(1))
    weights = keep.to(table.weight.dtype)
    if mean:
        weights = weights / lengths.clamp_min(1).unsqueeze(1).to(weights.dtype)
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return torch.bmm(weights.unsqueeze(1), table(ids)).squeeze(1)
    return F.embedding_bag(ids, table.weight, mode="sum", per_sample_weights=weights,
                           sparse=table.sparse)


def bag_inputs(batch: dict[str, torch.Tensor], has_bags: bool
               ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(bags [B, K, M], bag_lengths [B, K]) of a batch, or (None, None) without bags."""
    return (batch["bags"], batch["bag_lengths"]) if has_bags else (None, None)
