"""`dfm` under every model: one delay rate per binary view, trained through the loss contract
without a change to the model, and predictions that are the conversion probability."""

from __future__ import annotations

import pytest
import torch

from malt.data.schema import MAC
from malt.data.task import CAT, Task
from malt.errors import ConfigError
from malt.losses.delayed import dfm_loss
from malt.models import build_model
from malt.models.registry import model_names

DAY = 86400.0


def with_delays(batch: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """`batch` with elapsed times (up to 5 days) and, where a label is positive, a delay no
    longer than the wait."""
    g = torch.Generator().manual_seed(seed)
    rows, labels = batch["labels"].shape
    elapsed = torch.rand(rows, generator=g) * 5 * DAY
    delay = torch.rand(rows, labels, generator=g) * elapsed[:, None] * batch["labels"]
    return {**batch, "elapsed": elapsed, "delay": delay}


def dfm_model(name: str, vocab):
    torch.manual_seed(0)
    try:
        return build_model(name, MAC, vocab, Task("last", ("first",), delay_correction="dfm"))
    except ConfigError:  # a model of the main task alone
        return build_model(name, MAC, vocab, Task("last", delay_correction="dfm"))


@pytest.mark.parametrize("name", model_names())
def test_every_view_gets_its_own_rate_and_its_gradient(name, vocab, batch):
    model = dfm_model(name, vocab)
    views = model.headed_label_views
    assert sorted(model.delay_rates.log_rates) == sorted(views)
    assert all(f"delay_rates.log_rates.{v}" in model.state_dict() for v in views)
    batch = with_delays(batch)
    outputs = model(batch)
    terms = model.loss_terms(outputs, batch)
    terms.total(model.task.aux_weight).backward()
    for view in views:
        grad = model.delay_rates[view].grad
        assert grad is not None and torch.isfinite(grad) and grad != 0
    if name == "taml":  # its term adds learners and a distillation to the fused loss
        return
    for view in views:
        column = MAC.label_index(view)
        want = dfm_loss(outputs.logits[view], model.delay_rates[view],
                        batch["labels"][:, column], batch["elapsed"], batch["delay"][:, column],
                        None)
        torch.testing.assert_close(terms[view].value, want)


def test_the_prediction_is_the_conversion_probability(vocab, batch):
    model = dfm_model("shared_bottom", vocab).eval()
    with torch.inference_mode():
        logits = model(batch).logits
        probabilities = model.probabilities(batch)
    for view in ("last", "first"):
        torch.testing.assert_close(probabilities[view], torch.sigmoid(logits[view]))


def test_dfm_needs_the_delay_times_and_refuses_the_cartesian_view(vocab, batch):
    model = dfm_model("mmoe", vocab)
    with pytest.raises(ValueError, match="elapsed times"):
        model.loss_terms(model(batch), batch)
    with pytest.raises(ConfigError, match="Cartesian view"):
        Task("last", ("first", CAT), delay_correction="dfm")


def test_other_corrections_have_no_delay_rates(vocab):
    model = build_model("mmoe", MAC, vocab, Task("last", ("first",), delay_correction="fnw"))
    assert model.delay_rates is None
    assert not any("delay_rates" in k for k in model.state_dict())
