"""Every model's loss terms carry the task's delay correction, auxiliary views included, and
FNC's predictions are read through q / (1 − q)."""

from __future__ import annotations

import pytest
import torch

from malt.data.schema import MAC
from malt.data.task import CAT, Task
from malt.errors import ConfigError
from malt.losses.delayed import stream_loss
from malt.models import build_model

VIEWS = ("last", "first", "mta")


@pytest.mark.parametrize("name", ["shared_bottom", "mmoe", "moae", "kaml"])
@pytest.mark.parametrize("correction", ["fnw", "fnc"])
def test_each_view_term_is_its_corrected_stream_loss(name, correction, vocab, batch):
    torch.manual_seed(0)
    model = build_model(name, MAC, vocab, Task(VIEWS[0], VIEWS[1:], delay_correction=correction))
    outputs = model(batch)
    terms = model.loss_terms(outputs, batch)
    for view in VIEWS:
        target = batch["labels"][:, MAC.label_index(view)]
        want = stream_loss(outputs.logits[view], target, None, correction)
        torch.testing.assert_close(terms[view].value, want)
        assert terms[view].role == ("main" if view == VIEWS[0] else "auxiliary")


def test_fnc_predicts_q_over_one_minus_q_and_fnw_the_sigmoid(vocab, batch):
    probabilities = {}
    for correction in ("none", "fnw", "fnc"):
        torch.manual_seed(0)
        model = build_model("shared_bottom", MAC, vocab,
                            Task("last", ("first",), delay_correction=correction)).eval()
        with torch.inference_mode():
            probabilities[correction] = model.probabilities(batch)
    for view in ("last", "first"):
        q = probabilities["none"][view]
        torch.testing.assert_close(probabilities["fnw"][view], q)
        torch.testing.assert_close(probabilities["fnc"][view], (q / (1 - q)).clamp(max=1.0))


def test_a_correction_with_the_cartesian_view_is_refused():
    with pytest.raises(ConfigError, match="Cartesian view"):
        Task("last", ("first", CAT), delay_correction="fnw")


def test_taml_corrects_its_fused_and_learner_losses(vocab, batch):
    """TAML's term adds its learners' losses and a self-distillation to the fused loss: with
    FNW the first two are stream losses, the distillation (to its own teacher) is not."""
    torch.manual_seed(0)
    model = build_model("taml", MAC, vocab, Task("last", ("first",), delay_correction="fnw"))
    outputs = model(batch)
    terms = model.loss_terms(outputs, batch)
    c = model.config
    for view in ("last", "first"):
        target = batch["labels"][:, MAC.label_index(view)]
        learners = outputs.learners[view]
        n = learners.shape[1]
        own = sum(stream_loss(learners[:, i], target, None, "fnw") for i in range(n)) / n
        teacher = torch.sigmoid(outputs.logits[view].detach())
        distill = sum(torch.nn.functional.binary_cross_entropy_with_logits(learners[:, i],
                                                                           teacher)
                      for i in range(n)) / n
        want = (stream_loss(outputs.logits[view], target, None, "fnw")
                + c.learner_weight * own + c.distill_weight * distill)
        torch.testing.assert_close(terms[view].value, want)
