"""MoAE: mixture of asymmetric experts (the MAC paper's model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from malt.models.config import ExtractionConfig
from malt.models.model import Outputs
from malt.models.registry import Traits, register
from malt.models.transfer import KnowledgeTransferConfig, KnowledgeTransferModel

SELF_AUX_SUFFIX = "@self"


@dataclass(frozen=True)
class MoAEConfig(KnowledgeTransferConfig):
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    self_aux: bool = False
    """A MoAE without auxiliary views becomes the release's self-auxiliary MoAE (see `MoAE`);
    set by `release_defaults`."""

    RELEASE: ClassVar[dict[str, Any]] = {**KnowledgeTransferConfig.RELEASE, "self_aux": True}


@register("moae", MoAEConfig, Traits("MoAE", "knowledge-transfer", gated_experts=True))
class MoAE(KnowledgeTransferModel):
    """MoAE: PLE experts with NATAL's main-centric knowledge fusion into the main tower.

    A shared expert and one private expert per view (`cat` included), gated per view as in PLE;
    auxiliary towers on their views' mixtures, the main tower fusing their hidden states.

    Self-auxiliary form (`self_aux`, set by `release_defaults`, used only when the task has
    no auxiliary view): the release's "w/o mal" configuration, where the auxiliary list equals
    the main view. Its main tower is sized for two sources and fuses, as its one knowledge
    source, the hidden states of a plain pass through its own layers (the auxiliary tower and
    the main tower are one module in the release). Its main loss is reported twice, as
    `losses[main]` and `losses[main + "@self"]`, so that the trainer's total
    L_main + λ · Σ others equals the release's (1 + λ) · L_main, and gradient methods see the
    duplicated term as the release does.
    """

    def __init__(self, schema, vocab, task, config=None):
        self_aux = config is not None and config.self_aux and not task.aux
        super().__init__(schema, vocab, task, config, sources=1 if self_aux else None)
        self.self_aux = self_aux
        self.extraction = self.make_extraction(self.config.extraction)

    @property
    def self_view(self) -> str:
        return self.task.main + SELF_AUX_SUFFIX

    @property
    def loss_views(self) -> tuple[str, ...]:
        return (self.task.main, self.self_view) if self.self_aux else self.task.views

    def heads(self, x: torch.Tensor) -> Outputs:
        reps = self.extraction(x)
        main = self.task.main
        if not self.self_aux:
            return self.transfer(reps[main], reps)
        knowledge = {self.self_view: self.main_tower.plain(reps[main])}
        raw = self.main_tower(reps[main], self._fused(knowledge))
        return Outputs(logits={main: self.head_logits(main, raw)}, knowledge=knowledge)

    def losses(self, outputs: Outputs, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        losses = super().losses(outputs, batch)
        if self.self_aux:
            losses[self.self_view] = losses[self.task.main]
        return losses
