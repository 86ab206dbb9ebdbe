"""PLE: progressive layered extraction of shared and view-private experts."""

from __future__ import annotations

import torch
from torch import nn

from malt.layers import ExtractionNetwork
from malt.models.model import MaltModel, Outputs
from malt.models.registry import register


@register("ple")
class PLE(MaltModel):
    """PLE: shared and per-view private experts in extraction levels, one tower per view.

    `ple_levels` levels (1 = one CGC layer, the reference), `ple_shared_experts` shared and
    `ple_task_experts` private experts per view and level.
    """

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        c = self.config
        self.extraction = ExtractionNetwork(
            self.in_dim, task.views, levels=c.ple_levels, shared=c.ple_shared_experts,
            private=c.ple_task_experts, make_expert=self.make_expert, out_dim=c.expert_dim)
        self.towers = nn.ModuleDict({v: self.make_tower(v) for v in task.views})

    def heads(self, x: torch.Tensor) -> Outputs:
        reps = self.extraction(x)
        return Outputs(logits={v: self.head_logits(v, t(reps[v])[0])
                               for v, t in self.towers.items()})
