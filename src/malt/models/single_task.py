"""Single-task baseline: one independent network per action.

Every view has its own feature encoder (embedding tables included), expert and tower; nothing
is shared, so each network learns only from the rows whose loss reaches it. Trained under the
base mask (`--mask base`) each network sees only the rows targeting its action: the KAML
paper's SingleTask (one MLP per action on its own target samples).
"""

from __future__ import annotations

import torch
from torch import nn

from malt.models.config import ModelConfig
from malt.models.encoders import Encoder
from malt.models.model import MaltModel, Outputs
from malt.models.registry import Traits, register


@register("single_task", ModelConfig,
          Traits("SingleTask", "incomplete-labels", takes_cat=False, aux_weight=1.0,
                 shares_parameters=False))
class SingleTask(MaltModel):
    """Single-task baseline: one encoder, expert and tower per view, nothing shared."""

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        self.other_encoders = nn.ModuleDict({v: self.make_encoder() for v in task.views[1:]})
        self.experts = nn.ModuleDict({v: self.make_expert() for v in task.views})
        self.towers = nn.ModuleDict({v: self.make_tower(v) for v in task.views})

    def encoder_of(self, view: str) -> Encoder:
        return self.encoder if view == self.task.views[0] else self.other_encoders[view]

    def features_and_outputs(self, batch: dict[str, torch.Tensor]
                             ) -> tuple[torch.Tensor, Outputs]:
        """The main view's encoder's features (what an entire-space click head shares, as
        ESMM's click network shares the conversion network's embeddings) and every view's
        logit, each from its own encoder."""
        features = {v: self.encoder_of(v)(batch) for v in self.task.views}
        logits = {v: tower(self.experts[v](features[v]))[0].squeeze(-1)
                  for v, tower in self.towers.items()}
        return features[self.task.main], Outputs(logits=logits)

    def embedding_parameters(self) -> list[nn.Parameter]:
        return [p for v in self.task.views for p in self.encoder_of(v).embedding_parameters()]
