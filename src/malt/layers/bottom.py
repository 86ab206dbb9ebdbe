"""Multi-task bottoms: fused features x -> one representation per task.

KAML's bottom is pluggable (KAML paper §3.1): the MMoE of the paper, PLE's extraction network or
a single shared expert. Each builds its modules in the same order as the registry model of the
same name (`mmoe`, `ple`, `shared_bottom`), so a model on such a bottom with plain towers starts
from the same parameters as that model under the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from malt.layers.extraction import ExtractionNetwork
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


def build_bottom(kind: str, in_dim: int, tasks: Sequence[str], *, mmoe_experts: int,
                 ple_levels: int, ple_shared: int, ple_private: int,
                 make_expert: Callable[..., nn.Module], expert_dim: int) -> nn.Module:
    """The bottom `kind` (`mmoe`, `ple`, `shared_bottom`); `make_expert(in_dim=None)` builds one
    expert of output width `expert_dim`."""
    if kind == "mmoe":
        return MMoEBottom(in_dim, tasks, mmoe_experts, make_expert)
    if kind == "ple":
        return ExtractionNetwork(in_dim, tasks, levels=ple_levels, shared=ple_shared,
                                 private=ple_private, make_expert=make_expert, out_dim=expert_dim)
    if kind == "shared_bottom":
        return SharedExpertBottom(tasks, make_expert)
    raise ValueError(f"unknown bottom '{kind}'")
