"""Target attention: the candidate ad attends over one behaviour sequence."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TargetAttention(nn.Module):
    """Multi-head scaled dot-product attention with one query token per row.

    The query is a linear projection of all ad-side embeddings (ad and context fields); keys and
    values are the sequence embeddings. Parameters follow standard multi-head attention: a joint
    Q/K/V input projection (Xavier-uniform weight, zero bias) and an output projection (zero
    bias), preceded by the query projection.

    Args:
        query_dim: width of the flattened ad-side embeddings.
        dim: embedding width d (= model width).
        heads: number of heads; must divide `dim`.
    """

    def __init__(self, query_dim: int, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.query = nn.Linear(query_dim, dim)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, ad: torch.Tensor, keys: torch.Tensor, pad: torch.Tensor | None = None,
                *, return_weights: bool = False):
        """Attend from the ad over its sequence.

        Args:
            ad: flattened ad-side embeddings [B, query_dim].
            keys: sequence embeddings [B, L, d] (also the values).
            pad: bool [B, L], True at padded positions, or None for no mask. A row whose
                positions are all padded attends to nothing: its weights are all zero and its
                output is the output projection's bias.
            return_weights: also return the attention weights.
        Returns:
            [B, d], and the weights [B, heads, L] when asked.
        """
        b, length, d = keys.shape
        h, dh = self.heads, self.head_dim
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = F.linear(self.query(ad), w_q, b_q).view(b, 1, h, dh)
        k = F.linear(keys, w_k, b_k).view(b, length, h, dh)
        v = F.linear(keys, w_v, b_v).view(b, length, h, dh)
        # One query per row: elementwise products instead of B·H tiny matrix products.
        scores = (k * q).sum(-1).transpose(1, 2) / math.sqrt(dh)               # [B, H, L]
        if pad is not None:
            # A finite fill keeps fully padded rows NaN-free (their weights are zeroed below).
            scores = scores.masked_fill(pad.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        if pad is not None:
            weights = weights * (~pad.all(dim=1)).to(weights.dtype).view(b, 1, 1)
        out = (weights.transpose(1, 2).unsqueeze(-1) * v).sum(1).reshape(b, d)
        out = self.out_proj(out)
        return (out, weights) if return_weights else out
