"""Entire-space training (ESMM) over the MAL models: the product identity, the loss against a
hand-computed example, gradient flow to both heads, overfitting a tiny batch, refusals."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.data.schema import MAC
from malt.data.task import CTR, Task
from malt.errors import ConfigError
from malt.losses.entire_space import ctcvr_loss, log1mexp
from malt.models import build_model
from malt.models.entire_space import EntireSpace
from malt.models.registry import model_spec
from malt.runs.config import RunConfig, TaskConfig
from models.conftest import random_batch, small_vocab

MODELS = ["base", "shared_bottom", "mmoe", "ple", "home", "natal", "moae", "star", "single_task"]
TASK = Task("last", ("first", "linear"), entire_space=True)
LN2_NEAR = 0.6931
"""Just below ln 2, where `log1mexp` switches branch."""


def impression_batch(rows: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random batch as impressions: every credited row clicked, about 40% of the others."""
    batch = random_batch(rows, seed)
    g = torch.Generator().manual_seed(seed + 1)
    clicked = (batch["labels"] > 0).any(1) | (torch.rand(rows, generator=g) < 0.4)
    return {**batch, "click": clicked.float()}


def entire_space_model(name: str, vocab, task: Task = TASK) -> EntireSpace:
    torch.manual_seed(0)
    model = build_model(name, MAC, vocab, task)
    assert isinstance(model, EntireSpace)
    return model


def test_the_loss_matches_a_hand_computed_example():
    a = torch.tensor([0.0, 2.0, -1.0])   # click logits
    b = torch.tensor([1.0, -3.0, 0.5])   # conversion logits
    y = torch.tensor([1.0, 0.0, 0.0])    # click ∧ conversion

    def sig(z):
        return 1 / (1 + math.exp(-z))

    p = [sig(0.0) * sig(1.0), sig(2.0) * sig(-3.0), sig(-1.0) * sig(0.5)]
    expected = -(math.log(p[0]) + math.log(1 - p[1]) + math.log(1 - p[2])) / 3
    assert ctcvr_loss(a, b, y).item() == pytest.approx(expected, rel=1e-6)


@given(st.floats(-30, 30), st.floats(-30, 30))
@settings(max_examples=200, deadline=None)
def test_the_loss_is_the_bce_of_the_product_and_stays_finite(a, b):
    a64, b64 = torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    p = torch.sigmoid(a64) * torch.sigmoid(b64)
    for y in (0.0, 1.0):
        loss = ctcvr_loss(torch.tensor([a]), torch.tensor([b]), torch.tensor([y]))
        reference = -(y * torch.log(p) + (1 - y) * torch.log1p(-p)).item()
        if p.item() < 1 - 1e-6:  # above, the loss is capped at pCTCVR = 1 − 1e-7
            assert loss.item() == pytest.approx(reference, rel=1e-4, abs=1e-5)
        assert math.isfinite(loss.item())


def test_log1mexp_is_accurate_and_its_gradient_finite_at_both_ends():
    x = torch.tensor([-1e-6, -0.1, -LN2_NEAR, -5.0, -40.0], dtype=torch.float64,
                     requires_grad=True)
    out = log1mexp(x)
    with localcontext() as exact:  # a 50-digit reference, not the float formulas under test
        exact.prec = 50
        reference = [float((1 - Decimal(v).exp()).ln()) for v in x.tolist()]
    torch.testing.assert_close(out, torch.tensor(reference, dtype=torch.float64), rtol=1e-12,
                               atol=0)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()



@pytest.mark.parametrize("name", MODELS)
def test_ctcvr_is_the_product_of_ctr_and_cvr(name, vocab):
    model = entire_space_model(name, vocab, Task("last", ("first",), entire_space=True)
                               if name not in ("base",) else Task("last", entire_space=True))
    batch = impression_batch()
    model.eval()
    with torch.no_grad():
        ctr, cvr = model.impression_probabilities(batch)
        out = model(batch)
    assert ctr.shape == (64,) and set(cvr) == set(out.logits)
    torch.testing.assert_close(ctr, torch.sigmoid(out.ctr))
    assert model.probabilities(batch).keys() == cvr.keys()
    for view, z in out.logits.items():
        torch.testing.assert_close(cvr[view], torch.sigmoid(z))
        # The view's loss is the BCE of exactly that product on click ∧ conversion.
        p = ctr * cvr[view]
        y = batch["labels"][:, MAC.label_index(view)]
        expected = torch.nn.functional.binary_cross_entropy(p, y)
        torch.testing.assert_close(model.loss_terms(out, batch)[view].value, expected,
                                   rtol=1e-5, atol=1e-6)


def test_terms_roles_and_the_click_loss(vocab):
    model = entire_space_model("mmoe", vocab)
    batch = impression_batch()
    out = model(batch)
    terms = model.loss_terms(out, batch)
    assert [(t.name, t.role) for t in terms] == [
        (CTR, "main"), ("last", "main"), ("first", "auxiliary"), ("linear", "auxiliary")]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.ctr, batch["click"])
    torch.testing.assert_close(terms[CTR].value, expected)
    # Unclicked rows count as negatives of every CTCVR term: the loss is over impressions.
    assert terms["last"].value.item() != pytest.approx(
        ctcvr_loss(out.ctr[batch["click"] == 1], out.logits["last"][batch["click"] == 1],
                   batch["labels"][batch["click"] == 1, 0]).item())


def test_gradients_reach_the_click_head_the_views_and_the_shared_embeddings(vocab):
    model = entire_space_model("mmoe", vocab)
    batch = impression_batch()
    terms = model.loss_terms(model(batch), batch)
    model.zero_grad()
    terms["last"].value.backward(retain_graph=True)
    # The CTCVR term trains the conversion tower and the click head through the product.
    assert model.inner.towers["last"].out.weight.grad.abs().sum() > 0
    assert model.ctr_tower.out.weight.grad.abs().sum() > 0
    assert model.inner.towers["first"].out.weight.grad is None or \
        model.inner.towers["first"].out.weight.grad.abs().sum() == 0
    model.zero_grad()
    terms[CTR].value.backward()
    # The click term trains the click head and the shared embeddings, not the views' towers.
    assert model.ctr_expert.linear.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.embedding_parameters())
    assert model.inner.towers["last"].out.weight.grad is None or \
        model.inner.towers["last"].out.weight.grad.abs().sum() == 0


@pytest.mark.parametrize("name", ["base", "mmoe", "natal"])
def test_a_tiny_impression_batch_is_overfitted(name, vocab):
    task = Task("last", entire_space=True) if name == "base" else TASK
    model = entire_space_model(name, vocab, task)
    batch = impression_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        total = model.loss_terms(model(batch), batch).total(0.3)
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert total.item() < 0.02 < 0.5 < first
    model.eval()
    with torch.no_grad():
        ctr, cvr = model.impression_probabilities(batch)
    clicked = batch["click"] == 1
    assert ((ctr > 0.5) == clicked).all()
    # Where clicked, the conversion rate learns the label; where not, nothing pins it.
    last = batch["labels"][:, 0] > 0
    assert ((cvr["last"][clicked] > 0.5) == last[clicked]).all()


def test_parameters_are_stored_once_and_the_encoder_shared(vocab):
    model = entire_space_model("shared_bottom", vocab)
    names = list(model.state_dict())
    assert any(n.startswith("inner.encoder.") for n in names)
    assert not any(n.startswith("encoder.") for n in names)
    assert model.encoder is model.inner.encoder
    assert model.serving_inputs == model.inner.serving_inputs
    dense, embedding = model.parameter_counts()
    inner_dense, inner_embedding = model.inner.parameter_counts()
    assert embedding == inner_embedding and dense > inner_dense


@pytest.mark.parametrize("name, own", [("kaml", "loss and a forward pass"), ("taml", "loss")])
def test_models_the_wrapper_cannot_serve_are_refused(name, own):
    with pytest.raises(ConfigError, match=f"model '{name}' has a {own} of its own"):
        RunConfig(task=TaskConfig(main="last", entire_space=True), model={"name": name})
    with pytest.raises(ConfigError, match=f"model '{name}' has a {own} of its own"):
        EntireSpace(model_spec(name).build(MAC, small_vocab(), Task("last", ("first",))))


@pytest.mark.parametrize("name", ["moae", "star", "single_task"])
def test_models_with_their_own_terms_or_features_are_accepted(name):
    RunConfig(task=TaskConfig(main="last", aux=["first"], entire_space=True),
              model={"name": name})


@pytest.mark.parametrize("task, message", [
    (TaskConfig(aux=["cat"], entire_space=True), "the Cartesian view 'cat' has no such"),
    (TaskConfig(mask="base", entire_space=True), "it takes no training mask"),
    (TaskConfig(delay_correction="fnw", entire_space=True), "takes no delay correction"),
])
def test_the_run_config_refuses_what_entire_space_does_not_combine_with(task, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(task=task, model={"name": "mmoe"})


def test_a_view_named_like_the_click_task_is_refused():
    with pytest.raises(ConfigError, match="names its click task 'ctr'"):
        Task("ctr", entire_space=True)
