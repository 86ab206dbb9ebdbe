"""Entire-space training over MoAE (and the other models with terms or features of their own):
shapes, gradient flow to every parameter, overfitting, the loss against a hand-computed
example, and the self-auxiliary term kept over the impressions."""

from __future__ import annotations

import math

import pytest
import torch

from malt.data.schema import MAC
from malt.data.task import CTR, Task
from malt.models import build_model
from malt.models.entire_space import EntireSpace, EntireSpaceOutputs
from malt.models.moae import MoAE, MoAEConfig
from models.test_entire_space import impression_batch
from support.kaml_data import kaml_schema, kaml_vocab

AUX = Task("last", ("first", "linear"), entire_space=True)
SELF = Task("last", entire_space=True)
SELF_AUX = MoAEConfig(self_aux=True)


def moae(vocab, task: Task = AUX, config: MoAEConfig | None = None) -> EntireSpace:
    torch.manual_seed(0)
    model = build_model("moae", MAC, vocab, task, config)
    assert isinstance(model, EntireSpace) and isinstance(model.inner, MoAE)
    return model


def test_forward_shapes_and_the_knowledge_of_every_auxiliary_view(vocab):
    model = moae(vocab)
    out = model(impression_batch(rows=16))
    assert isinstance(out, EntireSpaceOutputs)
    assert out.ctr.shape == (16,)
    assert {v: z.shape for v, z in out.logits.items()} == {v: (16,) for v in AUX.views}
    # The main tower still fuses every auxiliary tower's hidden states, one per layer.
    assert set(out.knowledge) == {"first", "linear"}
    assert [k.shape[1] for k in out.knowledge["first"]] == list(model.config.tower.dims)


@pytest.mark.parametrize("task, config", [(AUX, None), (SELF, SELF_AUX)],
                         ids=["auxiliary-views", "self-auxiliary"])
def test_the_gradient_reaches_every_parameter(vocab, task, config):
    model = moae(vocab, task, config)
    batch = impression_batch()
    model.zero_grad()
    model.loss_terms(model(batch), batch).total(0.3).backward()
    dead = [n for n, p in model.named_parameters()
            if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead
    assert any(n.startswith("ctr_tower.") for n, _ in model.named_parameters())


def test_the_terms_are_the_click_then_moaes_own_over_the_impressions(vocab):
    model = moae(vocab, SELF, SELF_AUX)
    assert model.inner.self_aux
    batch = impression_batch()
    out = model(batch)
    terms = model.loss_terms(out, batch)
    assert [(t.name, t.role) for t in terms] == [
        (CTR, "main"), ("last", "main"), ("last@self", "auxiliary")]
    # The self-auxiliary term is the main view's CTCVR term over every impression, not a
    # conversion loss on the clicked rows.
    assert terms["last@self"].value is terms["last"].value
    clicked = batch["click"] == 1
    on_clicks = torch.nn.functional.binary_cross_entropy_with_logits(
        out.logits["last"][clicked], batch["labels"][clicked, 0])
    assert terms["last@self"].value.item() != pytest.approx(on_clicks.item())
    # (1 + λ) times the main view's term, and the click term, as the release's loss is.
    torch.testing.assert_close(terms.total(0.3),
                               terms[CTR].value + 1.3 * terms["last"].value)


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def bce(p: float, y: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


HAND = {
    "click": [1.0, 1.0, 0.0, 1.0],
    "ctr": [0.5, -1.0, 2.0, 0.0],
    "last": ([1.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.3, -0.5]),     # labels, conversion logits
    "first": ([1.0, 0.0, 0.0, 1.0], [0.0, 1.5, -2.0, 1.0]),
    "linear": ([1.0, 0.0, 0.0, 1.0], [-0.5, 0.5, 1.0, 0.2]),
}


def hand_batch_and_outputs(views: tuple[str, ...]):
    """Four impressions (the third unclicked) with chosen logits; labels in MAC's columns."""
    labels = torch.zeros(4, len(MAC.labels))
    for view in views:
        labels[:, MAC.label_index(view)] = torch.tensor(HAND[view][0])
    batch = {"labels": labels, "weights": labels, "click": torch.tensor(HAND["click"])}
    out = EntireSpaceOutputs(logits={v: torch.tensor(HAND[v][1]) for v in views},
                             ctr=torch.tensor(HAND["ctr"]))
    return batch, out


def hand_loss(view: str | None) -> float:
    """Mean BCE of the click (view None), or of pCTR · pCVR on click ∧ conversion."""
    rows = range(4)
    if view is None:
        return sum(bce(sig(HAND["ctr"][i]), HAND["click"][i]) for i in rows) / 4
    labels, logits = HAND[view]
    return sum(bce(sig(HAND["ctr"][i]) * sig(logits[i]), HAND["click"][i] * labels[i])
               for i in rows) / 4


@pytest.mark.parametrize("task, config, expected", [
    (AUX, None,
     lambda lam: hand_loss(None) + hand_loss("last")
     + lam * (hand_loss("first") + hand_loss("linear"))),
    (SELF, SELF_AUX, lambda lam: hand_loss(None) + (1 + lam) * hand_loss("last")),
], ids=["auxiliary-views", "self-auxiliary"])
def test_the_loss_equals_a_hand_computed_value(vocab, task, config, expected):
    model = moae(vocab, task, config)
    batch, out = hand_batch_and_outputs(task.views)
    terms = model.loss_terms(out, batch)
    for lam in (0.0, 0.3):
        assert terms.total(lam).item() == pytest.approx(expected(lam), rel=1e-6)


@pytest.mark.parametrize("task, config", [(AUX, None), (SELF, SELF_AUX)],
                         ids=["auxiliary-views", "self-auxiliary"])
def test_a_tiny_impression_batch_is_overfitted(vocab, task, config):
    model = moae(vocab, task, config)
    batch = impression_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        terms = model.loss_terms(model(batch), batch)
        total = terms.total(0.3)
        first = first if first is not None else total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    assert terms[CTR].value.item() < 0.01 and terms["last"].value.item() < 0.01 < 0.5 < first
    model.eval()
    with torch.no_grad():
        ctr, cvr = model.impression_probabilities(batch)
    clicked = batch["click"] == 1
    assert ((ctr > 0.5) == clicked).all()
    # pCTCVR learns click ∧ conversion on every impression, pCVR the label where clicked.
    last = batch["labels"][:, 0] > 0
    assert ((ctr * cvr["last"] > 0.5) == (clicked & last)).all()
    assert ((cvr["last"][clicked] > 0.5) == last[clicked]).all()


@pytest.mark.parametrize("name", ["single_task", "star"])
def test_the_click_head_reads_the_models_own_features(name, vocab):
    torch.manual_seed(0)
    model = build_model(name, MAC, vocab, Task("last", ("first",), entire_space=True))
    batch = impression_batch()
    model.zero_grad()
    model.loss_terms(model(batch), batch)[CTR].value.backward()
    # The click term reaches the main view's embeddings (SingleTask's first encoder is the main
    # view's), shared as ESMM shares them.
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.inner.encoder.embedding_parameters())
    assert [id(p) for p in model.embedding_parameters()] == \
        [id(p) for p in model.inner.embedding_parameters()]
    assert model.serving_inputs == model.inner.serving_inputs
    model.zero_grad()
    model.loss_terms(model(batch), batch).total(1.0).backward()
    dead = [n for n, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not dead


def test_the_wrapper_serves_what_the_wrapped_model_reads():
    # STAR's auxiliary network reads the campaign's target action, beyond its encoder's inputs.
    schema = kaml_schema()
    model = build_model("star", schema, kaml_vocab(schema),
                        Task("act", ("reg",), entire_space=True))
    assert "target_action" in model.serving_inputs
    assert model.serving_inputs == model.inner.serving_inputs
