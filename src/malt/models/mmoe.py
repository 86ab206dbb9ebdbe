"""MMoE: shared experts mixed by one softmax gate per view."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from malt.layers.bottom import MMoEBottom
from malt.models.config import ModelConfig
from malt.models.model import MultiTaskModel
from malt.models.registry import Traits, register
from malt.typed_fields import PositiveInt


@dataclass(frozen=True)
class MMoEConfig(ModelConfig):
    experts: PositiveInt = 2
    """Shared experts, mixed by a softmax gate per view (2 in the release)."""


@register("mmoe", MMoEConfig, Traits("MMoE", "multi-task", gated_experts=True))
class MMoE(MultiTaskModel):
    """MMoE: shared experts mixed by a softmax gate per view, one tower per view; the experts
    and the gates read the fused features x."""

    def make_bottom(self) -> nn.Module:
        return MMoEBottom(self.in_dim, self.task.views, self.config.experts, self.make_expert)
