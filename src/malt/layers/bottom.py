"""Multi-task bottoms: fused features x -> one representation per task.

MMoE's mixture of shared experts and Shared-Bottom's single expert (PLE's bottom is the
extraction network, `malt.layers.extraction`). The models of the same names are these bottoms
under one tower per task, and KAML's bottom is one of the three (KAML paper §3.1), so a KAML
with plain towers starts from the same parameters as that model under the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from malt.layers.gate import SoftmaxGate, mix


class MMoEBottom(nn.Module):
    """`experts` shared experts mixed by one softmax gate per task (KAML Eq. 2-3)."""

    def __init__(self, in_dim: int, tasks: Sequence[str], experts: int,
                 make_expert: Callable[[], nn.Module]):
        super().__init__()
        self.experts = nn.ModuleList(make_expert() for _ in range(experts))
        self.gates = nn.ModuleDict({t: SoftmaxGate(in_dim, experts) for t in tasks})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, D] -> task -> h_j [B, E]."""
        experts = [e(x) for e in self.experts]
        return {t: mix(g(x), experts) for t, g in self.gates.items()}


class SharedExpertBottom(nn.Module):
    """One expert whose output every task reads (Shared-Bottom)."""

    def __init__(self, tasks: Sequence[str], make_expert: Callable[[], nn.Module]):
        super().__init__()
        self.tasks = tuple(tasks)
        self.expert = make_expert()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, D] -> task -> h [B, E] (the same tensor for every task)."""
        h = self.expert(x)
        return dict.fromkeys(self.tasks, h)
