"""DIN's local activation unit: weights of a user's behaviours for one candidate item."""

from __future__ import annotations

import torch
from torch import nn

from malt.layers.mlp import MLP


class InterestPooling(nn.Module):
    """Pool a behaviour sequence by each behaviour's relevance to the target item (DIN).

    The weight of behaviour l is an MLP of [e_l; t; e_l − t; e_l ⊙ t] with a linear output
    (Zhou et al., 2018): weights are not normalised over the sequence, so the pooled vector
    keeps how strongly the user's history points at the target. Padded positions weigh 0.

    Args:
        dim: embedding width d of the items and of the target.
        hidden: widths of the attention MLP's hidden layers (empty: linear in its input).
        activation_name: the hidden layers' activation (see `malt.layers.mlp.Activation`).
    """

    def __init__(self, dim: int, hidden: tuple[int, ...], activation_name: str = "prelu"):
        super().__init__()
        self.mlp = MLP(4 * dim, hidden, activation_name)
        self.score = nn.Linear(self.mlp.out_dim, 1)

    def weights(self, items: torch.Tensor, target: torch.Tensor,
                pad: torch.Tensor | None = None) -> torch.Tensor:
        """items [B, L, d], target [B, d], pad bool [B, L] (True = padded) -> weights [B, L]."""
        t = target.unsqueeze(1).expand_as(items)
        w = self.score(self.mlp(torch.cat([items, t, items - t, items * t], dim=-1))).squeeze(-1)
        return w if pad is None else w.masked_fill(pad, 0.0)

    def forward(self, items: torch.Tensor, target: torch.Tensor,
                pad: torch.Tensor | None = None) -> torch.Tensor:
        """items [B, L, d], target [B, d], pad [B, L] or None -> Σ_l w_l e_l [B, d]."""
        return torch.bmm(self.weights(items, target, pad).unsqueeze(1), items).squeeze(1)
