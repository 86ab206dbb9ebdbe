"""MMoE: shared experts mixed by one softmax gate per view."""

from __future__ import annotations

import torch
from torch import nn

from malt.layers import SoftmaxGate
from malt.layers.gate import mix
from malt.models.model import MaltModel, Outputs
from malt.models.registry import register


@register("mmoe")
class MMoE(MaltModel):
    """MMoE: shared experts mixed by a softmax gate per view, one tower per view.

    `mmoe_experts` experts (2 in the reference) and the gates all read the fused features x.
    """

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        n = self.config.mmoe_experts
        self.experts = nn.ModuleList(self.make_expert() for _ in range(n))
        self.gates = nn.ModuleDict({v: SoftmaxGate(self.in_dim, n) for v in task.views})
        self.towers = nn.ModuleDict({v: self.make_tower(v) for v in task.views})

    def heads(self, x: torch.Tensor) -> Outputs:
        experts = [e(x) for e in self.experts]
        return Outputs(logits={v: self.head_logits(v, self.towers[v](mix(g(x), experts))[0])
                               for v, g in self.gates.items()})
