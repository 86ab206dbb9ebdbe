"""MoAE: mixture of asymmetric experts (the MAC paper's model)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from malt.losses.terms import LossTerm, LossTerms
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
    the main tower are one module in the release). The release's loss is (1 + λ) · L_main:
    its loss terms are the main loss as the main task and the same loss once more as an
    auxiliary term `<main>@self`, which gradient methods see as a task of its own, as in the
    release.
    """

    def __init__(self, schema, vocab, task, config=None):
        self_aux = config is not None and config.self_aux and not task.aux
        super().__init__(schema, vocab, task, config, sources=1 if self_aux else None)
        self.self_aux = self_aux
        self.extraction = self.make_extraction(self.config.extraction)

    @classmethod
    def own_auxiliary_terms(cls, config) -> bool:
        """The self-auxiliary term `<main>@self`, without auxiliary views."""
        return config.self_aux

    @property
    def self_view(self) -> str:
        return self.task.main + SELF_AUX_SUFFIX

    def heads(self, x: torch.Tensor) -> Outputs:
        reps = self.extraction(x)
        main = self.task.main
        if not self.self_aux:
            return self.transfer(reps[main], reps)
        knowledge = {self.self_view: self.main_tower.plain(reps[main])}
        raw = self.main_tower(reps[main], self._fused(knowledge))
        return Outputs(logits={main: self.head_logits(main, raw)}, knowledge=knowledge)

    def view_loss_terms(self, losses: dict[str, torch.Tensor]) -> LossTerms:
        """The views' terms, and in the self-auxiliary form the main view's once more as the
        auxiliary term `<main>@self` (under entire-space training: its CTCVR term, over the
        impressions, as the main term is)."""
        terms = super().view_loss_terms(losses)
        if not self.self_aux:
            return terms
        main = terms[self.task.main]
        return LossTerms((*terms, LossTerm(self.self_view, main.value, main.weight)))
