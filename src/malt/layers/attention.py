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
        b, _, d = keys.shape
        h, dh = self.heads, self.head_dim
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, _, b_v = self.in_proj_bias.chunk(3)
        q = F.linear(self.query(ad), w_q, b_q).view(b, h, dh)
        # With one query per row the key and value projections fold into the query side:
        # q_h . (W_k,h e_l + b_k,h) = (W_k,h^T q_h) . e_l + const(l), and the constant drops out
        # of the softmax; sum_l w_l (W_v,h e_l + b_v,h) = W_v,h (sum_l w_l e_l) + b_v,h sum_l w_l.
        # Two [B, H, d] x [B, d, L] products replace projecting all B*L positions twice.
        query_keys = torch.einsum("bhi,hid->bhd", q, w_k.view(h, dh, d)) / math.sqrt(dh)
        scores = torch.bmm(query_keys, keys.transpose(1, 2))                   # [B, H, L]
        if pad is not None:
            # A finite fill keeps fully padded rows NaN-free (their weights are zeroed below).
            scores = scores.masked_fill(pad.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        if pad is not None:
            weights = weights * (~pad.all(dim=1)).to(weights.dtype).view(b, 1, 1)
        pooled = torch.bmm(weights, keys)                                      # [B, H, d]
        values = torch.einsum("bhd,hid->bhi", pooled, w_v.view(h, dh, d)) \
            + b_v.view(h, dh) * weights.sum(-1, keepdim=True)
        out = self.out_proj(values.reshape(b, d))
        return (out, weights) if return_weights else out
