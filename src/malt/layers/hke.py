"""Hierarchical knowledge extraction (KAML paper §3.3): a task tower whose first layers are
split into an *original* sub-tower (rows whose target is the task) and an *extended* one (rows
the mask admits beyond their target), merged into one shared head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from malt.layers.tower import Tower


class SubTower(nn.Module):
    """in_dim -> hidden widths, ReLU after every layer."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        widths = (in_dim, *hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = F.relu(layer(h))
        return h


class HKETower(nn.Module):
    """s_ij = Head_j(M_ij · Orig_j(h_j) + (1 − M_ij) · Ext_j(h_j)), M_ij = 1(o_i = j).

    With the tower widths `hidden`, the first `split` hidden layers are duplicated into the two
    sub-towers and the remaining ones (then the output layer) form the head, so the tower keeps
    the depth and widths of a plain `Tower(in_dim, hidden, out_dim)`. Both sub-towers run on the
    whole batch and `torch.where` selects per row: each (row, task) reaches exactly one of them.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int, split: int = 1):
        super().__init__()
        if not 1 <= split <= len(hidden):
            raise ValueError(f"split {split} must be in [1, {len(hidden)}]")
        self.original = SubTower(in_dim, hidden[:split])
        self.extended = SubTower(in_dim, hidden[:split])
        self.head = Tower(hidden[split - 1], hidden[split:], out_dim)

    def forward(self, h: torch.Tensor, original: torch.Tensor | None) -> torch.Tensor:
        """h [B, in_dim], original bool [B] (None: every row is original) -> logits [B, out]."""
        if original is None:
            return self.head(self.original(h))[0]
        merged = torch.where(original.unsqueeze(1), self.original(h), self.extended(h))
        return self.head(merged)[0]
