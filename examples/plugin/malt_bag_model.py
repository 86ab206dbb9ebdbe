"""A model of one's own for malt, with an encoder of its own.

The encoder `bag` embeds the categorical fields and passes their concatenation through one
linear layer; the model `bag_mlp` puts one small MLP head per view on it and adds an L2 penalty
on its heads to the main task's loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

import malt
from malt.losses.terms import LossTerm, LossTerms
from malt.models import EncoderConfig, MaltModel, ModelConfig, Outputs, Traits
from malt.typed_fields import NonNegativeFloat, PositiveInt


@dataclass(frozen=True)
class BagConfig(EncoderConfig):
    """The bag encoder's options (`embed_dim` and `sparse_embeddings` come with every encoder)."""

    name: str = field(default="bag", init=False)
    width: PositiveInt = 32
    """Width of the encoder's output."""


class BagEncoder(nn.Module):
    """Categorical fields -> one embedding each -> concatenated -> linear -> ReLU."""

    def __init__(self, schema, vocab, config: BagConfig):
        super().__init__()
        self.tables = nn.ModuleList(
            nn.Embedding(vocab.sizes[name], config.embed_dim, sparse=config.sparse_embeddings)
            for name in schema.field_names)
        self.project = nn.Linear(len(self.tables) * config.embed_dim, config.width)
        self.out_dim = config.width
        self.inputs = ("sparse",)  # the only batch key it reads

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = batch["sparse"]
        fields = [table(ids[:, i]) for i, table in enumerate(self.tables)]
        return torch.relu(self.project(torch.cat(fields, dim=1)))

    def embedding_parameters(self) -> list[nn.Parameter]:
        return list(self.tables.parameters())


malt.register_encoder("bag", BagEncoder, BagConfig)


@dataclass(frozen=True)
class BagMLPConfig(ModelConfig):
    encoder: EncoderConfig = field(default_factory=BagConfig)
    hidden: PositiveInt = 16
    """Hidden width of each view's head."""
    l2: NonNegativeFloat = 1e-4
    """Weight of the L2 penalty on the heads' parameters."""


class BagMLP(MaltModel):
    """One MLP head per view on the encoder's output."""

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        hidden = self.config.hidden
        self.view_heads = nn.ModuleDict({
            view: nn.Sequential(nn.Linear(self.in_dim, hidden), nn.ReLU(),
                                nn.Linear(hidden, self.out_dim(view)))
            for view in task.views})

    def heads(self, x: torch.Tensor) -> Outputs:
        return Outputs(logits={view: self.head_logits(view, head(x))
                               for view, head in self.view_heads.items()})

    def loss_terms(self, outputs: Outputs, batch: dict[str, torch.Tensor]) -> LossTerms:
        terms = super().loss_terms(outputs, batch)  # one per view: main, then auxiliary
        penalty = sum(p.square().sum() for p in self.view_heads.parameters())
        return LossTerms((*terms, LossTerm("l2", penalty, self.config.l2, role="main")))


malt.register_model("bag_mlp", BagMLP, BagMLPConfig, Traits("BagMLP", "multi-task"))
