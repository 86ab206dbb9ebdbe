"""Towers: MLP heads that expose their hidden states, and the knowledge-fusing main tower."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Tower(nn.Module):
    """in_dim -> hidden widths (ReLU) -> out_dim logits, no activation on the output.

    With the reference widths (256 -> 128 -> 64 -> 32 -> C) and C = 1, a binary head has one
    logit read through a sigmoid; the reference's two-way softmax over (z0, z1) equals
    sigmoid(z1 - z0), so both span the same functions (the single logit has 33 fewer weights).
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int):
        super().__init__()
        widths = (in_dim, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(widths[-1], out_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """h [B, in_dim] -> (logits [B, out_dim], post-ReLU hidden states [B, n_l] per layer)."""
        states = []
        for layer in self.hidden:
            h = F.relu(layer(h))
            states.append(h)
        return self.out(h), states


class FusedTower(nn.Module):
    """The main tower of NATAL and MoAE: knowledge of the auxiliary towers is fused at every
    hidden layer.

    At hidden layer l with pre-activation z_l = W_l h_{l-1} + b_l and the auxiliary towers'
    hidden states a_l^1 … a_l^K (same width n_l):
        h_l = ReLU(Φ_l [z_l ; a_l^1 ; … ; a_l^K] + φ_l + z_l)
    with Φ_l [n_l, n_l·(K+1)]: one fusion layer per hidden layer, main first, then the sources
    in the given order, plus a residual on z_l. The output layer reads h_L.

    Args:
        in_dim: input width, as for `Tower`.
        hidden: hidden widths, as for `Tower`.
        out_dim: number of logits, as for `Tower`.
        sources: number K of knowledge sources fused in.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int, sources: int):
        super().__init__()
        widths = (in_dim, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.fusion = nn.ModuleList(nn.Linear(n * (sources + 1), n) for n in hidden)
        self.out = nn.Linear(widths[-1], out_dim)
        self.sources = sources

    def forward(self, h: torch.Tensor, knowledge: list[list[torch.Tensor]]) -> torch.Tensor:
        """h [B, in_dim], knowledge: K lists of hidden states (one [B, n_l] per layer)
        -> logits [B, out_dim]."""
        if len(knowledge) != self.sources:
            raise ValueError(f"expected {self.sources} knowledge sources, got {len(knowledge)}")
        for depth, (layer, fusion) in enumerate(zip(self.hidden, self.fusion)):
            z = layer(h)
            h = F.relu(fusion(torch.cat([z, *(k[depth] for k in knowledge)], dim=1)) + z)
        return self.out(h)

    def plain(self, h: torch.Tensor) -> list[torch.Tensor]:
        """The hidden states of a pass through the tower's own layers without fusion:
        h [B, in_dim] -> [B, n_l] per layer (the self-auxiliary MoAE's knowledge)."""
        states = []
        for layer in self.hidden:
            h = F.relu(layer(h))
            states.append(h)
        return states
