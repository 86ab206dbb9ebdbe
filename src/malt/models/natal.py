"""NATAL: attribution knowledge aggregation (AKA) into a primary target predictor (PTP), with
the Cartesian auxiliary target (CAT) as an optional auxiliary view."""

from __future__ import annotations

import torch

from malt.models.registry import Traits, register
from malt.models.transfer import KnowledgeTransferConfig, KnowledgeTransferModel


@register("natal", KnowledgeTransferConfig, Traits("NATAL", "knowledge-transfer"))
class NATAL(KnowledgeTransferModel):
    """NATAL: auxiliary towers' hidden states fused into the main tower over one shared expert.

    Auxiliary towers (AKA, `cat` included when listed) read the shared expert; their hidden
    states are fused into the main tower (PTP) at every hidden layer.

    The CAT view's class is `malt.data.task.cat_classes` of the binarised labels (bit i = label i of
    the schema); its logits are trained but never used for prediction, only its knowledge
    vectors. The reference fuses at all three hidden layers, as here; the NATAL article speaks of
    the penultimate layer only.
    """

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        self.expert = self.make_expert()

    def heads(self, x: torch.Tensor):
        h = self.expert(x)
        return self.transfer(h, {v: h for v in self.task.aux})
