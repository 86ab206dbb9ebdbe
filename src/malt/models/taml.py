"""TAML (Liu et al., WWW 2023 Companion, "Task Adaptive Multi-learner Network for Joint CTR and
CVR Estimation") as reconstructed from its abstract: no public code or full text was available,
so the equations below are our reading of its three components.

Per task k, `learners` learners. Each learner l mixes, with its own softmax gate over x,
the shared experts (all tasks), the task's general experts (all learners of task k) and its own
learner experts, and maps the mixture through its tower to a logit z_kl. The task's logit is
the fusion z_k = Σ_l a_kl · z_kl with a_k = softmax(U_k x) (`fusion = "gate"`) or 1/L
(`mean`); the serving score is σ(z_k).

Loss of view k (masked means as everywhere, see `malt.losses.views`):
    BCE(z_k, y_k) + λ_l · mean_l BCE(z_kl, y_k) + λ_d · mean_l BCE(z_kl, stopgrad σ(z_k))
the last term being self-distillation from the fused score to each learner (on the rows whose
mask is 1, or on every row with `distill_on = "all"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from malt.layers import SoftmaxGate
from malt.layers.gate import mix
from malt.losses.terms import LossTerms
from malt.losses.views import binary_target, label_loss, masked_binary_loss, view_delay
from malt.models.config import ModelConfig
from malt.models.model import MaltModel, Outputs
from malt.models.registry import Traits, register
from malt.typed_fields import NonNegativeFloat, PositiveInt


@dataclass
class TamlOutputs(Outputs):
    learners: dict[str, torch.Tensor] = field(default_factory=dict)
    """view -> the learners' logits [B, L]."""


class _TaskLearners(nn.Module):
    """The general experts, learner experts, learner gates and towers of one task."""

    def __init__(self, model: MaltModel, view: str):
        super().__init__()
        c = model.config
        visible = c.shared_experts + c.general_experts + c.learner_experts
        self.general = nn.ModuleList(model.make_expert() for _ in range(c.general_experts))
        self.private = nn.ModuleList(
            nn.ModuleList(model.make_expert() for _ in range(c.learner_experts))
            for _ in range(c.learners))
        self.gates = nn.ModuleList(SoftmaxGate(model.in_dim, visible)
                                   for _ in range(c.learners))
        self.towers = nn.ModuleList(model.make_tower(view) for _ in range(c.learners))
        self.fusion = SoftmaxGate(model.in_dim, c.learners) \
            if c.fusion == "gate" else None

    def forward(self, x: torch.Tensor, shared: list[torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, D], shared expert outputs -> (fused logit [B], learner logits [B, L])."""
        general = [e(x) for e in self.general]
        learners = []
        for gate, private, tower in zip(self.gates, self.private, self.towers):
            h = mix(gate(x), [*shared, *general, *(e(x) for e in private)])
            learners.append(tower(h)[0].squeeze(-1))
        z = torch.stack(learners, 1)
        weights = self.fusion(x) if self.fusion is not None else torch.full_like(
            z, 1.0 / z.shape[1])
        return (weights * z).sum(1), z


@dataclass(frozen=True)
class TAMLConfig(ModelConfig):
    learners: PositiveInt = 3
    """Learners per task."""
    shared_experts: PositiveInt = 2
    """Experts every learner of every task reads."""
    general_experts: PositiveInt = 1
    """Experts shared by the learners of one task."""
    learner_experts: PositiveInt = 1
    """Experts private to one learner."""
    fusion: Literal["gate", "mean"] = "gate"
    """Fuse the learners' logits with a softmax gate (`gate`) or their mean (`mean`)."""
    learner_weight: NonNegativeFloat = 1.0
    """λ_l: weight of the learners' own BCE."""
    distill_weight: NonNegativeFloat = 0.5
    """λ_d: weight of the self-distillation from the fused score to each learner."""
    distill_on: Literal["masked", "all"] = "masked"
    """Distil on the rows whose mask is 1 (`masked`) or on every row (`all`)."""

    def __post_init__(self) -> None:
        super().__post_init__()


@register("taml", TAMLConfig,
          Traits("TAML", "incomplete-labels", takes_cat=False, gated_experts=True,
                 aux_weight=1.0))
class TAML(MaltModel):
    """TAML (reconstructed): shared, task and learner experts, fused learners, self-distillation."""

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        c = self.config
        self.shared = nn.ModuleList(self.make_expert() for _ in range(c.shared_experts))
        self.tasks = nn.ModuleDict({v: _TaskLearners(self, v) for v in task.views})

    def heads(self, x: torch.Tensor) -> TamlOutputs:
        shared = [e(x) for e in self.shared]
        logits, learners = {}, {}
        for view, module in self.tasks.items():
            logits[view], learners[view] = module(x, shared)
        return TamlOutputs(logits=logits, learners=learners)

    def loss_terms(self, outputs: Outputs, batch: dict[str, torch.Tensor]) -> LossTerms:
        """One term per view: fused BCE + λ_l · learners' BCE + λ_d · self-distillation."""
        c = self.config
        out = {}
        for view, z in outputs.logits.items():
            column = self.columns[view]
            target = binary_target(batch, column, self.task.label_mode)
            mask = batch["mask"][:, column] if "mask" in batch else torch.ones_like(target)
            learners = outputs.learners[view]
            n = learners.shape[1]
            correction = self.task.delay_correction
            delay = (None if self.delay_rates is None
                     else view_delay(batch, column, self.delay_rates[view]))
            own = sum(label_loss(learners[:, i], target, mask, correction, delay)
                      for i in range(n)) / n
            teacher = torch.sigmoid(z.detach().float())
            distill_rows = mask if c.distill_on == "masked" else torch.ones_like(mask)
            distill = sum(masked_binary_loss(learners[:, i], teacher, distill_rows)
                          for i in range(n)) / n
            out[view] = (label_loss(z, target, mask, correction, delay) + c.learner_weight * own
                         + c.distill_weight * distill)
        return LossTerms.of_views(out, self.task.main)

