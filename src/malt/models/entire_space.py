"""Entire-space training over any MAL model (ESMM, Ma et al. 2018).

`EntireSpace` wraps a model built for the task: its encoder and heads give each attribution
view's conversion logit as before, and a click head of its own (an expert and a tower like the
views', over the same fused features, so the embeddings are shared as in ESMM) gives the click
logit. The loss is over every impression: the click head against the click, and per view the
product pCTR × pCVR against click ∧ conversion (`malt.losses.entire_space`); the conversion
rate itself is never fitted on its own, which is what lets it be trained on impressions
without the sample selection of the clicks. Its loss terms: the click term in the main role,
then the wrapped model's terms made of the views' CTCVR losses (`view_loss_terms`): by default
the main view's in the main role (ESMM adds it to the click term with weight 1) and each
auxiliary view's an auxiliary task (λ, or the gradient method, as for any model); a model's
own terms made of its per-view losses (MoAE's self-auxiliary term) are kept, over the same
impressions.

The click head reads the features the wrapped model's `features_and_outputs` gives: the fused
features every view reads, or for SingleTask (an encoder per view) its main view's.

`probabilities` are the conversion rates per view (what a ranking multiplies by its own pCTR,
what export, predict and serving return); `impression_probabilities` adds the click rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from malt.data.task import CTR
from malt.errors import ConfigError
from malt.losses.entire_space import ctcvr_loss
from malt.losses.terms import LossTerm, LossTerms
from malt.losses.views import binary_loss, binary_target
from malt.models.model import MaltModel, Outputs


@dataclass
class EntireSpaceOutputs(Outputs):
    """The wrapped model's outputs (its logits are the views' conversion logits) and the click
    logit [B]."""

    ctr: torch.Tensor | None = None


def check_entire_space_model(model: type[MaltModel], name: str) -> None:
    """Refuse a model class the wrapper cannot serve: one whose `loss_terms` is its own
    (KAML's ranking term, TAML's learners), which entire-space training would silently
    replace, or one whose `forward` is its own rather than `features_and_outputs` (KAML's
    routing), so that there are no features for the click head to read."""
    own = [what for what, method in (("loss", "loss_terms"), ("forward pass", "forward"))
           if getattr(model, method) is not getattr(MaltModel, method)]
    if own:
        raise ConfigError(f"model '{name}' has a {' and a '.join(own)} of its own, which "
                          "entire-space training (task.entire_space) cannot wrap: train it in "
                          "the click space, or pick base, shared_bottom, mmoe, ple, home, "
                          "natal, moae, star or single_task")


class EntireSpace(MaltModel):
    """A MAL model trained over every impression (see the module docstring).

    It presents the wrapped model's schema, task, config, name and traits; its parameters are
    the wrapped model's (under `inner.`) and the click head's.
    """

    def __init__(self, inner: MaltModel):
        nn.Module.__init__(self)  # the encoder is the wrapped model's: build none
        check_entire_space_model(type(inner), inner.name)
        self.inner = inner
        self.schema, self.vocab, self.task, self.config = (inner.schema, inner.vocab,
                                                           inner.task, inner.config)
        self.name, self.config_class, self.traits = inner.name, inner.config_class, inner.traits
        self.columns, self.cat_classes, self.delay_rates = inner.columns, inner.cat_classes, None
        self.ctr_expert = inner.make_expert()
        self.ctr_tower = inner.make_tower(self.task.main)  # one logit, as a binary view's

    @property
    def encoder(self):  # noqa: D102  the wrapped model's, so it is stored once
        return self.inner.encoder

    @property
    def serving_inputs(self) -> tuple[str, ...]:
        """The wrapped model's (the click head reads nothing more)."""
        return self.inner.serving_inputs

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The wrapped model's embedding tables (the click head has none)."""
        return self.inner.embedding_parameters()

    def forward(self, batch: dict[str, torch.Tensor]) -> EntireSpaceOutputs:
        x, outputs = self.inner.features_and_outputs(batch)
        raw, _ = self.ctr_tower(self.ctr_expert(x))
        return EntireSpaceOutputs(logits=outputs.logits, knowledge=outputs.knowledge,
                                  ctr=raw.squeeze(-1))

    def loss_terms(self, outputs: Outputs, batch: dict[str, torch.Tensor]) -> LossTerms:
        """The click term (main), then the wrapped model's terms of the views' CTCVR losses
        (`view_loss_terms`); every term a mean over the batch's impressions."""
        if not isinstance(outputs, EntireSpaceOutputs) or outputs.ctr is None:
            raise TypeError("entire-space loss terms need the outputs of EntireSpace.forward")
        ctcvr = {view: ctcvr_loss(outputs.ctr, logit,
                                  binary_target(batch, self.columns[view], self.task.label_mode))
                 for view, logit in outputs.logits.items()}
        click = LossTerm(CTR, binary_loss(outputs.ctr, batch["click"]), role="main")
        return LossTerms((click, *self.inner.view_loss_terms(ctcvr)))

    def impression_probabilities(self, batch: dict[str, torch.Tensor]
                                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(pCTR [B], view -> pCVR [B]) from one forward pass."""
        outputs = self(batch)
        return (torch.sigmoid(outputs.ctr),
                {v: torch.sigmoid(z) for v, z in outputs.logits.items()})

    def probabilities(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """view -> pCVR [B] (the conversion rate given a click, over any impression)."""
        return self.impression_probabilities(batch)[1]
