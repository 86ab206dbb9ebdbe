"""The feature encoder shared by every model: embeddings, target attention, SimTier, fusion."""

from __future__ import annotations

import torch
from torch import nn

from malt.data.schema import Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.layers.attention import TargetAttention
from malt.layers.embedding import FieldEmbeddings, bag_inputs
from malt.layers.numeric import register_numeric_buffers, standardise_numeric
from malt.layers.padding import SequencePadding
from malt.layers.simtier import SimTier


class FeatureEncoder(nn.Module):
    """Batch -> fused feature vector x [B, D], normalised by a LayerNorm with learned affine.

    x is the concatenation, in this order, of
        user field embeddings        Σ d_f over the user fields, then the user bags pooled
        ad and context embeddings    Σ d_f over the ad fields, context fields, then their bags
        one attention output per id sequence   Σ d_s (a sequence's table width)
        SimTier over the float sequences       bins (sum) or C · bins (concat)
        the numeric columns, transformed       N
    with every width d unless the schema's `embed_dims` says otherwise, so D = (F_u + F_a +
    S) · d + SimTier width + N; for the MAC schema D = 19 · 16 + 32 = 336. The attention of a
    sequence projects the ad-side embeddings (whatever their widths) to the width of the
    sequence's table, which `heads` must divide.
    A numeric column enters as (t(x) - shift) / scale with t its transform and (shift, scale)
    from `vocab.numeric` (the training days' mean and std for `standardise`), kept as buffers
    so that they travel with the model's state (a column missing there starts at (0, 1)).
    A schema without id sequences has no attention block, one without float sequences no
    SimTier. Attention needs at least one ad or context field for its query.

    Padding (`malt.layers.padding.SequencePadding`): each id sequence has its own mask, True
    where it holds `vocab.sequence_pad[that sequence]` (past its own length and a short row's
    items), and its attention reads it; SimTier reads the first id sequence's, with which the
    float sequences are aligned. Without id sequences no position counts as padded. Whether
    the masks are used and the SimTier count rule are set by `padding_mask` and
    `count_padding`; either way a sequence's attention reads its own `length` positions only
    (without the mask, a short row's padding within them is read as the release reads it).
    """

    def __init__(self, schema: Schema, vocab: VocabInfo, *, dim: int = 16, heads: int = 4,
                 padding_mask: bool = True, simtier_bins: int = 32,
                 simtier_combine: str = "sum", count_padding: bool = False,
                 sparse: bool = False):
        super().__init__()
        self.user_order = schema.embedded_group_indices("user")
        self.ad_order = schema.ad_side_indices()
        self.embeddings = FieldEmbeddings(schema, vocab, dim, sparse=sparse)
        widths = self.embeddings.widths
        n_seq = len(schema.id_sequences)
        if n_seq and not self.ad_order:
            raise ConfigError(f"schema '{schema.name}': target attention over id sequences needs "
                              f"at least one ad or context field for its query")
        query_dim = sum(widths[i] for i in self.ad_order)
        for spec, width in zip(schema.id_sequences, self.embeddings.sequence_widths):
            if width % heads:
                raise ConfigError(f"schema '{schema.name}': the id sequence '{spec.name}' is "
                                  f"{width} wide (the table of '{spec.shares}'), not a multiple "
                                  f"of the attention's {heads} heads")
        self.attention = nn.ModuleList(TargetAttention(query_dim, width, heads)
                                       for width in self.embeddings.sequence_widths)
        n_float = len(schema.float_sequences)
        self.simtier = SimTier(n_float, simtier_bins, simtier_combine) if n_float else None
        self.padding_mask, self.count_padding = padding_mask, count_padding
        self.sequence_lengths = [s.length for s in schema.id_sequences]
        self.sequence_padding = SequencePadding(schema, vocab) if n_seq else None
        n_numeric = register_numeric_buffers(self, schema, vocab)
        self.has_bags = bool(schema.bags)
        self.block_widths = {
            "user": sum(widths[i] for i in self.user_order),
            "ad": query_dim,
            "attention": sum(self.embeddings.sequence_widths),
            "simtier": self.simtier.out_dim if self.simtier is not None else 0,
            "numeric": n_numeric,
        }
        self.out_dim = sum(self.block_widths.values())
        if self.out_dim == 0:
            raise ConfigError(f"schema '{schema.name}' gives the model no input features")
        self.norm = nn.LayerNorm(self.out_dim)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The batch keys `forward` reads: `sparse`, then `bags`, `bag_lengths`, `seq`,
        `dense_seq` and `numeric` when the schema has such columns."""
        present = {"sparse": True, "bags": self.has_bags, "bag_lengths": self.has_bags,
                   "seq": bool(len(self.attention)),
                   "dense_seq": self.simtier is not None,
                   "numeric": bool(self.block_widths["numeric"])}
        return tuple(key for key, used in present.items() if used)

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The embedding tables (trained at a higher learning rate)."""
        return list(self.embeddings.parameters())

    @property
    def ad_dim(self) -> int:
        """Width of `ad_block`."""
        return self.block_widths["ad"]

    def ad_block(self, batch: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The ad-side block of this batch's fused features `x` [B, D] (its output): the ad
        and context fields' and bags' embeddings after the fusion's norm, [B, ad_dim]."""
        lo = self.block_widths["user"]
        return x[:, lo:lo + self.ad_dim]

    def padding(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """bool [B, S, L], True where id sequence s is padded; None when the schema has no id
        sequence."""
        if self.sequence_padding is None:
            return None
        return self.sequence_padding(batch["seq"])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """batch (sparse [B, F], seq [B, S, L], dense_seq [B, C, L], numeric [B, N]) -> x [B, D]."""
        fields, seqs = self.embeddings(batch["sparse"], batch["seq"] if len(self.attention)
                                       else None, *bag_inputs(batch, self.has_bags))
        parts = []
        if self.user_order:
            parts.append(torch.cat([fields[i] for i in self.user_order], dim=1))
        ad = torch.cat([fields[i] for i in self.ad_order], dim=1) if self.ad_order else None
        if ad is not None:
            parts.append(ad)
        pad = self.padding(batch)
        if len(self.attention):
            parts += [att(ad, seqs[s][:, :n], pad[:, s, :n] if self.padding_mask else None)
                      for s, (att, n) in enumerate(zip(self.attention, self.sequence_lengths))]
        if self.simtier is not None:
            float_pad = None if self.count_padding or self.sequence_padding is None \
                else self.sequence_padding.of_floats(pad)
            parts.append(self.simtier(batch["dense_seq"], float_pad))
        if self.block_widths["numeric"]:
            parts.append(self.numeric(batch["numeric"]))
        return self.norm(torch.cat(parts, dim=1))

    def numeric(self, values: torch.Tensor) -> torch.Tensor:
        """Raw numeric columns [B, N] -> their transformed, standardised values [B, N]."""
        return standardise_numeric(values, self.numeric_shift, self.numeric_scale,
                                   self.numeric_log1p)
