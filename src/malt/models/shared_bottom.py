"""Shared-Bottom: one expert shared by every view, one tower per view."""

from __future__ import annotations

import torch
from torch import nn

from malt.models.model import MaltModel, Outputs
from malt.models.registry import register


@register("shared_bottom")
class SharedBottom(MaltModel):
    """Shared-Bottom: one shared expert, one tower per view."""

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        self.expert = self.make_expert()
        self.towers = nn.ModuleDict({v: self.make_tower(v) for v in task.views})

    def heads(self, x: torch.Tensor) -> Outputs:
        h = self.expert(x)
        return Outputs(logits={v: self.head_logits(v, t(h)[0]) for v, t in self.towers.items()})
