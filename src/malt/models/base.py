"""BASE: the single-attribution baseline."""

from __future__ import annotations

import torch

from malt.models.config import ModelConfig
from malt.models.model import MaltModel, Outputs
from malt.models.registry import Traits, register


@register("base", ModelConfig, Traits("BASE", "single-attribution", uses_aux=False))
class Base(MaltModel):
    """Single-attribution baseline: one expert and the main tower.

    BASE has no head for auxiliary views (the reference builds unused towers for them; they
    are left out): a run config naming some is refused, and a task given here with some is
    trained on its main view only.
    """

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        self.expert = self.make_expert()
        self.tower = self.make_tower(task.main)

    def heads(self, x: torch.Tensor) -> Outputs:
        raw, _ = self.tower(self.expert(x))
        return Outputs(logits={self.task.main: self.head_logits(self.task.main, raw)})
