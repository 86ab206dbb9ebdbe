"""The cross network of DCN-V2: explicit feature crosses of bounded degree."""

from __future__ import annotations

import torch
from torch import nn


class CrossNetwork(nn.Module):
    """x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l for l = 0 .. layers - 1 (Wang et al., 2021).

    x_{l+1} holds crosses of x_0 up to degree l + 2; the residual keeps the lower degrees.
    W_l is a full d × d matrix, or U_l V_l^T of rank `rank` (d × r each) when `rank` is
    given, which costs 2 d r weights per layer instead of d². Biases start at zero.

    Args:
        dim: width d of x_0 (and of every x_l).
        layers: number of cross layers.
        rank: None for full-rank W_l, else the rank r of the factorisation.
    """

    def __init__(self, dim: int, layers: int, rank: int | None = None):
        super().__init__()
        self.rank = rank
        if rank is None:
            self.weights = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        else:
            # V^T then U: the bias lives on U's side, as b_l in the equation.
            self.weights = nn.ModuleList(
                nn.Sequential(nn.Linear(dim, rank, bias=False), nn.Linear(rank, dim))
                for _ in range(layers))
        for w in self.weights:
            nn.init.zeros_(w.bias if rank is None else w[1].bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """x_0 [B, d] -> x_L [B, d]."""
        x = x0
        for w in self.weights:
            x = x0 * w(x) + x
        return x
