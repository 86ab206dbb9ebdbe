"""Shared-Bottom: one expert shared by every view, one tower per view."""

from __future__ import annotations

from torch import nn

from malt.layers.bottom import SharedExpertBottom
from malt.models.config import ModelConfig
from malt.models.model import MultiTaskModel
from malt.models.registry import Traits, register


@register("shared_bottom", ModelConfig, Traits("Shared-Bottom", "multi-task"))
class SharedBottom(MultiTaskModel):
    """Shared-Bottom: one shared expert, one tower per view."""

    def make_bottom(self) -> nn.Module:
        return SharedExpertBottom(self.task.views, self.make_expert)
