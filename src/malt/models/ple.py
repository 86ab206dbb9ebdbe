"""PLE: progressive layered extraction of shared and view-private experts."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from malt.models.config import ExtractionConfig, ModelConfig
from malt.models.model import MultiTaskModel
from malt.models.registry import Traits, register


@dataclass(frozen=True)
class PLEConfig(ModelConfig):
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)


@register("ple", PLEConfig, Traits("PLE", "multi-task", gated_experts=True))
class PLE(MultiTaskModel):
    """PLE: shared and per-view private experts in extraction levels, one tower per view
    (`extraction.levels` levels, 1 = one CGC layer as in the release)."""

    def make_bottom(self) -> nn.Module:
        return self.make_extraction(self.config.extraction)
