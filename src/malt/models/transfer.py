"""What NATAL and MoAE share: auxiliary towers whose hidden states flow into the main tower."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from malt.layers import FusedTower
from malt.models.config import ModelConfig
from malt.models.model import MaltModel, Outputs


@dataclass(frozen=True)
class KnowledgeTransferConfig(ModelConfig):
    knowledge_detach: bool = False
    """Stop the main loss's gradient at the knowledge vectors fused into the main tower. The
    release does not."""


class KnowledgeTransferModel(MaltModel):
    """Auxiliary towers (one per auxiliary view, `cat` included when listed) and a main tower
    that fuses their hidden states at every hidden layer (`FusedTower`).

    The transfer is asymmetric in the forward pass: the main tower reads the auxiliary towers,
    no auxiliary tower reads the main one. Like the reference, the main loss's gradient flows
    back into the auxiliary towers through the fusion unless `knowledge_detach` is set.
    """

    def __init__(self, schema, vocab, task, config=None, *, sources: int | None = None):
        super().__init__(schema, vocab, task, config)
        c = self.config
        self.aux_towers = nn.ModuleDict({v: self.make_tower(v) for v in task.aux})
        self.main_tower = FusedTower(c.expert.dim, c.tower.dims, self.out_dim(task.main),
                                     len(task.aux) if sources is None else sources)

    def transfer(self, main_in: torch.Tensor, aux_in: dict[str, torch.Tensor]) -> Outputs:
        """main_in [B, E] and aux view -> its tower input [B, E] -> logits and knowledge."""
        aux_logits, knowledge = {}, {}
        for view, tower in self.aux_towers.items():
            raw, knowledge[view] = tower(aux_in[view])
            aux_logits[view] = self.head_logits(view, raw)
        main = self.main_tower(main_in, self._fused(knowledge))
        return Outputs(logits={self.task.main: self.head_logits(self.task.main, main),
                               **aux_logits}, knowledge=knowledge)

    def _fused(self, knowledge: dict[str, list[torch.Tensor]]) -> list[list[torch.Tensor]]:
        if self.config.knowledge_detach:
            return [[k.detach() for k in states] for states in knowledge.values()]
        return list(knowledge.values())
