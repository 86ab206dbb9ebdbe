"""KAML (Jia et al., "No One Left Behind", KAML paper): a multi-task model for incomplete,
skewed multi-label conversion data.

KAML = a multi-task bottom (MMoE in the paper; `bottom` picks MMoE, PLE or Shared-Bottom)
+ hierarchical knowledge extraction (HKE, `hke`): every task tower splits into an original
sub-tower for the rows whose target is the task and an extended one for the rows the training
mask admits beyond their target (ADM, `--mask adm`), merged into one head
+ ranking-based label utilisation (RLU, `rlu`): a pairwise loss ranking each task's confirmed
conversions above its zeros, over every row of the batch
+ the per-task averaged BCE of the trainer's mask (Eq. 12), balanced by γ (Eq. 13).

The paper's Table-4 ablations are switches: MMoE (`mmoe`, base mask), +ADM (`mmoe`, adm mask),
+ADM+HKE (`kaml`, `rlu=false`, adm mask), +RLU (`kaml`, `hke=false`, base mask),
KAML (`kaml`, adm mask). With `hke=false` and `rlu=false` KAML is its bottom's registry model
(same parameters under the same seed, same losses).

Loss terms: each view's masked BCE of weight γ (the main view's in the main role, the others
auxiliary) and, with RLU, the auxiliary term `rank`, L_rank of weight 1 − γ; with λ = 1 (KAML's
default λ) the loss is γ · L_BCE + (1 − γ) · L_rank.
Serving scores every row through the original sub-towers (a row is always scored on its
target).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from malt.errors import ConfigError
from malt.layers.bottom import MMoEBottom, SharedExpertBottom
from malt.layers.hke import HKETower
from malt.losses.delayed import corrected_probability
from malt.losses.ranking import ranking_loss
from malt.losses.terms import LossTerm, LossTerms, view_terms
from malt.losses.views import view_losses
from malt.models.config import ExtractionConfig, ModelConfig
from malt.models.model import MaltModel, Outputs
from malt.models.registry import Traits, register
from malt.typed_fields import NonNegativeFloat, PositiveInt, ProbabilityFloat

RANK = "rank"
"""Name of the ranking loss term."""


@dataclass
class KamlOutputs(Outputs):
    original: dict[str, torch.Tensor] = field(default_factory=dict)
    """view -> [B] logit of every row through the original sub-tower (filled when RLU ranks
    original logits)."""


@dataclass(frozen=True)
class KAMLConfig(ModelConfig):
    bottom: Literal["mmoe", "ple", "shared_bottom"] = "mmoe"
    """The multi-task bottom: MMoE's (the paper), PLE's extraction network or one shared
    expert; each built as the model of that name builds it."""
    experts: PositiveInt = 2
    """Shared experts of the `mmoe` bottom."""
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    """The `ple` bottom."""
    hke: bool = True
    """Hierarchical knowledge extraction (original / extended sub-towers); needs a mask that
    extends samples beyond their target (`adm`, `reported`, `oracle` or `none`)."""
    hke_layers: PositiveInt = 1
    """Tower hidden layers duplicated into the two HKE sub-towers; the rest form the head."""
    rlu: bool = True
    """Ranking-based label utilisation (pairwise loss on (positive, zero) pairs)."""
    rlu_gamma: ProbabilityFloat = 0.8
    """γ in γ · L_BCE + (1 − γ) · L_rank (used only with `rlu`)."""
    rlu_normalize: Literal["pairs", "batch"] = "pairs"
    """Ranking loss per task divided by its number of pairs (`pairs`) or by the batch size
    (`batch`, the paper's Eq. 11 as written)."""
    rlu_use_mask: bool = False
    """Restrict both sides of the pairs to rows whose mask is 1 (default: every row)."""
    rlu_logits: Literal["routed", "original"] = "routed"
    """Rank the HKE-routed logits (`routed`) or every row through the original sub-tower."""
    rlu_task_weights: tuple[NonNegativeFloat, ...] | None = None
    """β_k per view in task order (None: 1 for every view)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hke and self.hke_layers > len(self.tower.dims):
            raise ConfigError(f"model.hke_layers ({self.hke_layers}) exceeds the tower's hidden "
                              f"layers ({len(self.tower.dims)})")


@register("kaml", KAMLConfig,
          Traits("KAML", "incomplete-labels", takes_cat=False, gated_experts=True,
                 aux_weight=1.0))
class KAML(MaltModel):
    """KAML: a multi-task bottom, HKE sub-towers per task and the RLU ranking loss."""

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        c = self.config
        if c.hke and task.mask == "base":
            raise ConfigError("HKE learns from samples the mask extends beyond their target; "
                              "under the base mask there are none (use --mask adm, or "
                              "--model-option hke=false)")
        if c.rlu_task_weights is not None and len(c.rlu_task_weights) != len(task.views):
            raise ConfigError(f"model.rlu_task_weights needs one weight per view "
                              f"{list(task.views)}, got {c.rlu_task_weights}")
        self.bottom = self.make_bottom()
        self.towers = nn.ModuleDict(
            {v: HKETower(c.expert.dim, c.tower.dims, 1, c.hke_layers) if c.hke
             else self.make_tower(v) for v in task.views})

    def make_bottom(self) -> nn.Module:
        """The bottom `bottom`, as the model of that name builds it."""
        c, views = self.config, self.task.views
        if c.bottom == "mmoe":
            return MMoEBottom(self.in_dim, views, c.experts, self.make_expert)
        if c.bottom == "ple":
            return self.make_extraction(c.extraction)
        return SharedExpertBottom(views, self.make_expert)

    def forward(self, batch: dict[str, torch.Tensor]) -> KamlOutputs:
        """Logits routed by HKE: row i goes through task j's original sub-tower when its target
        is j, else through the extended one (every row is original without a target column)."""
        reps = self.bottom(self.encoder(batch))
        target = batch.get("target_action")
        logits, original = {}, {}
        for view, tower in self.towers.items():
            if not self.config.hke:
                logits[view] = tower(reps[view])[0].squeeze(-1)
                continue
            route = None if target is None else target == self.columns[view]
            logits[view] = tower(reps[view], route).squeeze(-1)
            if self.config.rlu and self.config.rlu_logits == "original":
                original[view] = tower(reps[view], None).squeeze(-1)
        return KamlOutputs(logits=logits, original=original)

    @classmethod
    def own_auxiliary_terms(cls, config) -> bool:
        """The ranking term `rank` of RLU."""
        return config.rlu

    def loss_terms(self, outputs: Outputs, batch: dict[str, torch.Tensor]) -> LossTerms:
        """Each view's masked BCE (weight γ with RLU, else 1), and with RLU `rank`, L_rank of
        weight 1 − γ."""
        bce = view_losses(outputs.logits, batch, self.columns, self.task.label_mode,
                          self.task.delay_correction, self.delay_rates)
        c = self.config
        if not c.rlu:
            return LossTerms.of_views(bce, self.task.main)
        terms = view_terms(bce, self.task.main, c.rlu_gamma)
        views = self.task.views
        source = outputs.original if c.rlu_logits == "original" and c.hke else outputs.logits
        columns = [self.columns[v] for v in views]
        keep = batch["mask"][:, columns] > 0 if c.rlu_use_mask and "mask" in batch else None
        rank = ranking_loss(torch.stack([source[v] for v in views], 1),
                            batch["labels"][:, columns], keep, c.rlu_task_weights,
                            c.rlu_normalize)
        return LossTerms((*terms, LossTerm(RANK, rank, 1.0 - c.rlu_gamma)))

    def probabilities(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every row through the original sub-towers (serving scores a row on its target)."""
        without_target = {k: v for k, v in batch.items() if k != "target_action"}
        return {v: corrected_probability(z, self.task.delay_correction)
                for v, z in self(without_target).logits.items()}
