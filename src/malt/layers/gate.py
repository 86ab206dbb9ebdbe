"""Gates that weight a set of expert outputs."""

from __future__ import annotations

import torch
from torch import nn


def mix(weights: torch.Tensor, experts: list[torch.Tensor]) -> torch.Tensor:
    """Σ_j weights[:, j] · experts[j]: weights [B, n], n tensors [B, E] -> [B, E]."""
    return torch.einsum("bn,nbe->be", weights, torch.stack(experts))


class SoftmaxGate(nn.Module):
    """softmax(W x + c) over `n` experts; the weights of each row sum to one."""

    def __init__(self, in_dim: int, n: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in_dim] -> weights [B, n]."""
        return torch.softmax(self.linear(x), dim=-1)


class SelfGate(nn.Module):
    """HoME's self-gate over the experts of one group: sigmoid(w · x) for a single expert (a
    softmax over one logit would be the constant 1), softmax(W x) for several."""

    def __init__(self, in_dim: int, n: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in_dim] -> weights [B, n]."""
        logits = self.linear(x)
        return torch.sigmoid(logits) if logits.shape[-1] == 1 else torch.softmax(logits, dim=-1)
