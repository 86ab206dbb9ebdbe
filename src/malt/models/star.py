"""STAR (Sheng et al., CIKM 2021) as a multi-task model: one star-topology path per task.

Path j: partitioned normalisation of the fused features with task j's moments and affine, the
star-topology FCN with weights W ⊙ W_j (widths `expert_dim`, `tower_dims`, then one logit),
plus an auxiliary network's logit. The auxiliary network reads the embedding of the task id,
the embedding of the row's target action (when the data has one) and the ad-side block the
encoder gives (`ad_block`: the ad and context fields and bags, campaign included), so that it
is more than a per-task bias. Every built-in encoder gives one: `target_attention` a slice of
its fused output, the flat encoders (`dnn`, `dcnv2`, `din`), whose output mixes the fields,
the ad-side embeddings looked up again. An encoder of a plugin without `ad_dim` and
`ad_block` cannot carry STAR.

Partitioned normalisation in mixed batches: path j is normalised with the moments of the rows
that carry loss for task j (`batch["mask"][:, j]`, e.g. the rows targeting j under the base
mask; every row without a mask) and only those rows update its running moments; evaluation
uses each path's running moments.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from malt.errors import ConfigError
from malt.layers import Tower
from malt.layers.star import PartitionedNorm, StarFCN
from malt.models.config import ModelConfig
from malt.models.model import MaltModel, Outputs
from malt.models.registry import Traits, register
from malt.typed_fields import PositiveInt


@dataclass(frozen=True)
class STARConfig(ModelConfig):
    aux_dims: tuple[PositiveInt, ...] = (32,)
    """Hidden widths of STAR's auxiliary network."""


@register("star", STARConfig,
          Traits("STAR", "incomplete-labels", takes_cat=False, aux_weight=1.0))
class STAR(MaltModel):
    """STAR: partitioned normalisation, star-topology FCN and an auxiliary network per task."""

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        c, n = self.config, len(task.views)
        if not (isinstance(getattr(self.encoder, "ad_dim", None), int)
                and callable(getattr(self.encoder, "ad_block", None))):
            raise ConfigError(f"STAR's auxiliary network reads the ad-side embeddings an "
                              f"encoder gives as `ad_dim` and `ad_block(batch, x)` "
                              f"(malt.models.encoders); model.encoder.name = "
                              f"'{c.encoder.name}' has neither")
        self.norm = PartitionedNorm(self.in_dim, n)
        self.fcn = StarFCN(self.in_dim, (c.expert.dim, *c.tower.dims, 1), n)
        dim = c.encoder.embed_dim
        self.task_embedding = nn.Embedding(n, dim)
        self.target_embedding = nn.Embedding(len(schema.labels) + 1, dim) \
            if schema.target_action_column else None
        aux_in = dim * (2 if self.target_embedding is not None else 1) + self.encoder.ad_dim
        self.aux = Tower(aux_in, c.aux_dims, 1)

    @property
    def serving_inputs(self) -> tuple[str, ...]:
        """The encoder's inputs, and the campaign's target action when the data has one."""
        extra = ("target_action",) if self.target_embedding is not None else ()
        return (*super().serving_inputs, *extra)

    def features_and_outputs(self, batch: dict[str, torch.Tensor]
                             ) -> tuple[torch.Tensor, Outputs]:
        """The fused features x [B, D] every path reads, and the paths' logits."""
        x = self.encoder(batch)
        views = self.task.views
        rows = None
        if "mask" in batch:
            rows = batch["mask"][:, [self.columns[v] for v in views]] > 0
        main = self.fcn(self.norm(x, rows)).squeeze(-1)                     # [N, B]
        n, b = len(views), x.shape[0]
        parts = [self.task_embedding.weight.unsqueeze(1).expand(n, b, -1)]
        if self.target_embedding is not None:
            target = batch["target_action"]
            # "other" (-1) has its own row after the labels.
            target = torch.where(target < 0, len(self.schema.labels), target)
            parts.append(self.target_embedding(target).unsqueeze(0).expand(n, b, -1))
        if self.encoder.ad_dim:
            parts.append(self.encoder.ad_block(batch, x).unsqueeze(0).expand(n, b, -1))
        aux = self.aux(torch.cat(parts, dim=2))[0].squeeze(-1)             # [N, B]
        logits = main + aux
        return x, Outputs(logits={v: logits[j] for j, v in enumerate(views)})

