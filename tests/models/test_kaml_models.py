"""Models for incomplete multi-label data: single_task, star, taml, kaml (HKE, RLU, ablation
switches), and the registry baselines under a training mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from malt.data.masks import MaskPolicy, base_mask
from malt.data.schema import MAC
from malt.data.task import Task
from malt.errors import ConfigError
from malt.losses.ranking import ranking_loss
from malt.losses.views import view_losses
from malt.models import build_model
from models.conftest import loss_values
from support.kaml_data import kaml_batch, kaml_schema, kaml_vocab
from support.model_configs import small_config

SCHEMA = kaml_schema()
VOCAB = kaml_vocab(SCHEMA)
NEW_MODELS = ("single_task", "star", "taml", "kaml")


def _task(mask="adm", main="act", aux=("reg", "pay")) -> Task:
    return Task(main, aux, 1.0, mask=mask)


def _batch(rows=64, seed=0, mask="adm"):
    """A batch as the trainer hands it to the model: the ADM mask is stood in for by the
    reported mask (same columns), true labels removed."""
    batch = kaml_batch(rows, seed)
    return MaskPolicy("reported" if mask == "adm" else mask, SCHEMA).apply(batch, 0)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_shapes_and_probabilities(name, make_batch):
    torch.manual_seed(0)
    model = build_model(name, SCHEMA, VOCAB, _task(), small_config(name))
    batch = _batch()
    out = model(batch)
    assert set(out.logits) == {"act", "reg", "pay"}
    assert all(z.shape == (64,) for z in out.logits.values())
    terms = model.loss_terms(out, batch)
    extra = ("rank",) if name == "kaml" else ()
    assert [t.name for t in terms] == ["act", "reg", "pay", *extra]
    assert [t.name for t in terms.main] == ["act"]
    assert all(torch.isfinite(t.value) for t in terms)
    probs = model.probabilities(batch)
    assert all(((p > 0) & (p < 1)).all() for p in probs.values())
    # Models adapt to any schema, also one without campaign columns (the MAC schema).
    from models.conftest import small_vocab

    mac = build_model(name, MAC, small_vocab(), Task("last", ("first",), 1.0), small_config(name))
    mac_batch = make_batch(16)
    assert mac(mac_batch).logits["first"].shape == (16,)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_overfits_a_tiny_batch(name):
    torch.manual_seed(0)
    mask = "base" if name == "single_task" else "adm"
    model = build_model(name, SCHEMA, VOCAB, _task(mask), small_config(name))
    batch = _batch(32, seed=3, mask=mask)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)

    def total():
        return sum(loss_values(model, model(batch), batch).values())

    first = float(total().detach())
    for _ in range(150):
        optimiser.zero_grad()
        total().backward()
        optimiser.step()
    assert float(total().detach()) < 0.2 * first


@pytest.mark.parametrize("bottom", ["mmoe", "ple", "shared_bottom"])
def test_kaml_without_hke_and_rlu_is_its_bottom_model(bottom):
    config = small_config("kaml", bottom=bottom, hke=False, rlu=False)
    torch.manual_seed(5)
    kaml = build_model("kaml", SCHEMA, VOCAB, _task("base"), config)
    torch.manual_seed(5)
    plain = build_model(bottom, SCHEMA, VOCAB, _task("base"), small_config(bottom))
    batch = _batch(mask="base")
    kaml_out, plain_out = kaml(batch), plain(batch)
    for view in ("act", "reg", "pay"):
        torch.testing.assert_close(kaml_out.logits[view], plain_out.logits[view])
    kaml_terms, plain_terms = kaml.loss_terms(kaml_out, batch), plain.loss_terms(plain_out, batch)
    assert [(t.name, t.role, t.weight) for t in kaml_terms] == \
        [(t.name, t.role, t.weight) for t in plain_terms]
    for term in kaml_terms:
        torch.testing.assert_close(term.value, plain_terms[term.name].value)


def test_hke_routes_each_row_and_task_through_exactly_one_sub_tower():
    torch.manual_seed(1)
    model = build_model("kaml", SCHEMA, VOCAB, _task(), small_config("kaml", rlu=False))
    batch = _batch(12, seed=2)
    batch["target_action"][[3, 7]] = -1                  # targets outside the labels
    target = batch["target_action"]
    assert all((target == j).any() for j in range(3))
    for i in range(12):
        for j, view in enumerate(("act", "reg", "pay")):
            model.zero_grad()
            model(batch).logits[view][i].backward()
            for k, other in enumerate(("act", "reg", "pay")):
                tower = model.towers[other]
                grads = {side: sum(float(p.grad.abs().sum()) for p in
                                   getattr(tower, side).parameters() if p.grad is not None)
                         for side in ("original", "extended")}
                if k != j:
                    assert grads == {"original": 0.0, "extended": 0.0}
                elif int(target[i]) == j:
                    assert grads["original"] > 0 and grads["extended"] == 0
                else:
                    assert grads["extended"] > 0 and grads["original"] == 0


def test_kaml_scores_every_row_through_the_original_sub_towers():
    torch.manual_seed(1)
    model = build_model("kaml", SCHEMA, VOCAB, _task(), small_config("kaml")).eval()
    batch = _batch(20)
    probs = model.probabilities(batch)
    reps = model.bottom(model.encoder(batch))
    for view in ("act", "reg", "pay"):
        tower = model.towers[view]
        want = torch.sigmoid(tower.head(tower.original(reps[view]))[0].squeeze(-1))
        torch.testing.assert_close(probs[view], want)
    routed = model(batch).logits["act"]
    own = batch["target_action"] == 0
    torch.testing.assert_close(torch.sigmoid(routed[own]), probs["act"][own])


def test_kaml_loss_is_gamma_bce_plus_one_minus_gamma_rank():
    torch.manual_seed(2)
    model = build_model("kaml", SCHEMA, VOCAB, _task(), small_config("kaml", rlu_gamma=0.7))
    batch = _batch(40)
    out = model(batch)
    terms = model.loss_terms(out, batch)
    bce = view_losses(out.logits, batch, model.columns)
    logits = torch.stack([out.logits[v] for v in ("act", "reg", "pay")], 1)
    rank = ranking_loss(logits, batch["labels"])
    assert [(t.name, t.weight, t.role) for t in terms] == [
        ("act", 0.7, "main"), ("reg", 0.7, "auxiliary"), ("pay", 0.7, "auxiliary"),
        ("rank", pytest.approx(0.3), "auxiliary")]
    for view, loss in bce.items():
        torch.testing.assert_close(terms[view].value, loss)
    torch.testing.assert_close(terms["rank"].value, rank)
    # KAML's default λ = 1 makes the loss the paper's.
    want = 0.7 * sum(bce.values()) + 0.3 * rank
    torch.testing.assert_close(terms.total(1.0), want)


def test_kaml_config_errors():
    with pytest.raises(ConfigError, match="HKE"):
        build_model("kaml", SCHEMA, VOCAB, _task("base"), small_config("kaml"))
    build_model("kaml", SCHEMA, VOCAB, _task("base"), small_config("kaml", hke=False))
    with pytest.raises(ConfigError, match="cat"):
        build_model("kaml", SCHEMA, VOCAB, Task("act", ("cat",), mask="none"),
                    small_config("kaml"))
    with pytest.raises(ConfigError, match="rlu_task_weights"):
        build_model("kaml", SCHEMA, VOCAB, _task(), small_config("kaml", rlu_task_weights=(1.0,)))
    with pytest.raises(ConfigError, match="hke_layers"):
        small_config("kaml", hke_layers=3)


def test_single_task_networks_share_nothing():
    torch.manual_seed(0)
    model = build_model("single_task", SCHEMA, VOCAB, _task("base"), small_config("single_task"))
    batch = _batch(mask="base")
    loss_values(model, model(batch), batch)["reg"].backward()
    touched = {name.split(".")[0] + "." + name.split(".")[1] for name, p in
               model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert touched <= {"other_encoders.reg", "experts.reg", "towers.reg"}
    assert len(model.embedding_parameters()) == 3 * len(SCHEMA.fields)


def test_a_registry_model_under_the_base_mask_learns_only_from_target_rows():
    torch.manual_seed(0)
    model = build_model("mmoe", SCHEMA, VOCAB, _task("base"), small_config("mmoe"))
    batch = _batch(mask="base")
    out = model(batch)
    for z in out.logits.values():
        z.retain_grad()
    sum(loss_values(model, out, batch).values()).backward()
    mask = base_mask(batch["target_action"], 3)
    for j, view in enumerate(("act", "reg", "pay")):
        grad = out.logits[view].grad
        assert (grad[mask[:, j] == 0] == 0).all()
        if mask[:, j].any():
            assert (grad[mask[:, j] > 0] != 0).any()


def test_star_with_one_task_and_neutral_task_parameters_is_a_batchnorm_mlp():
    from malt.layers.star import PartitionedNorm, StarFCN

    torch.manual_seed(0)
    norm, fcn = PartitionedNorm(6, 1), StarFCN(6, (5, 1), 1)
    reference = torch.nn.BatchNorm1d(6)
    x = torch.randn(20, 6)
    got = fcn(norm(x))[0]
    h = reference(x)
    for i, layer in enumerate(fcn.shared):
        h = layer(h)
        if i == 0:
            h = F.relu(h)
    torch.testing.assert_close(got, h)
    torch.testing.assert_close(norm.running_mean[0], reference.running_mean)
    torch.testing.assert_close(norm.running_var[0], reference.running_var)
    norm.eval(), reference.eval()
    torch.testing.assert_close(norm(x)[0], reference(x))


def test_partitioned_norm_uses_each_tasks_own_rows():
    from malt.layers.star import PartitionedNorm

    norm = PartitionedNorm(3, 3)
    x = torch.randn(10, 3)
    rows = torch.zeros(10, 3, dtype=torch.bool)
    rows[:6, 0] = True
    rows[4:, 1] = True
    rows[9, 2] = True                                    # one row: running moments, no update
    out = norm(x, rows)
    for j, part in ((0, x[:6]), (1, x[4:])):
        want = (x - part.mean(0)) / torch.sqrt(part.var(0, unbiased=False) + 1e-5)
        torch.testing.assert_close(out[j], want)
        torch.testing.assert_close(norm.running_mean[j], 0.1 * part.mean(0))
    torch.testing.assert_close(out[2], x / (1 + 1e-5) ** 0.5)
    assert (norm.running_mean[2] == 0).all() and (norm.running_var[2] == 1).all()


def test_taml_loss_is_fused_plus_learners_plus_distillation():
    torch.manual_seed(3)
    config = small_config("taml", learner_weight=0.4, distill_weight=0.7)
    model = build_model("taml", SCHEMA, VOCAB, _task("base"), config)
    batch = _batch(mask="base")
    out = model(batch)
    losses = loss_values(model, out, batch)
    for view, column in (("act", 0), ("reg", 1)):
        m, y = batch["mask"][:, column], batch["labels"][:, column]

        def bce(z, t, rows=m):
            return (F.binary_cross_entropy_with_logits(z, t, reduction="none") * rows).sum() \
                / rows.sum().clamp(min=1)

        z, learners = out.logits[view], out.learners[view]
        assert learners.shape == (64, 3)
        teacher = torch.sigmoid(z.detach())
        want = bce(z, y) + 0.4 * sum(bce(learners[:, n], y) for n in range(3)) / 3 \
            + 0.7 * sum(bce(learners[:, n], teacher) for n in range(3)) / 3
        torch.testing.assert_close(losses[view], want)
    mean = build_model("taml", SCHEMA, VOCAB, _task("base"), config.updated(fusion="mean"))
    out = mean(batch)
    torch.testing.assert_close(out.logits["act"], out.learners["act"].mean(1))
