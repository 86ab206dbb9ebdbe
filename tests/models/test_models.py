"""Every registered model: shapes, training, knowledge transfer, auxiliary-only parameters."""

from __future__ import annotations

import pytest
import torch

from malt.data import MAC, prepare
from malt.data.batches import DayBatches
from malt.data.task import CAT, Task
from malt.errors import ConfigError
from malt.layers import SoftmaxGate
from malt.models import build_model, model_names, model_spec
from malt.models.transfer import KnowledgeTransferModel
from models.conftest import loss_values

MODELS = ["base", "shared_bottom", "mmoe", "ple", "home", "natal", "moae"]
TASKS = [Task("last"), Task("first", ("last",)), Task("last", ("first", "linear", "mta")),
         Task("mta", ("last", "first", "linear", CAT)), Task("linear", (CAT,))]
FULL = Task("last", ("first", "linear", "mta", CAT))
PAPER_FORMS = {"home": {"variant": "paper"}, "ple": {"extraction": {"levels": 2}}}
"""The non-reference forms: the paper's HoME, a two-level PLE."""


def test_registry_lists_every_model_in_order():
    assert model_names() == [*MODELS, "single_task", "star", "taml", "kaml"]


def test_unknown_model_names_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'mmoe'"):
        build_model("mmeo", MAC, None, Task("last"))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("task", TASKS, ids=lambda t: f"{t.main}+{'-'.join(t.aux) or 'none'}")
def test_output_shapes(name, task, vocab, batch):
    torch.manual_seed(0)
    model = build_model(name, MAC, vocab, task)
    out = model(batch)
    views = (task.main,) if name == "base" else task.views
    assert list(out.logits) == list(views)
    for view, z in out.logits.items():
        assert z.shape == ((64, 16) if view == CAT else (64,))
    terms = model.loss_terms(out, batch)
    assert [(t.name, t.role, t.weight) for t in terms] == \
        [(v, "main" if v == task.main else "auxiliary", 1.0) for v in views]
    probs = model.probabilities(batch)
    assert set(probs) == {v for v in views if v != CAT}
    assert all(((p > 0) & (p < 1)).all() for p in probs.values())
    if name in ("natal", "moae"):
        assert list(out.knowledge) == list(task.aux)
        assert all([k.shape[1] for k in states] == [128, 64, 32]
                   for states in out.knowledge.values())
    else:
        assert out.knowledge == {}


def _train(model, batch, steps: int, lr: float = 3e-3) -> list[float]:
    emb = {id(p) for p in model.embedding_parameters()}
    dense = [p for p in model.parameters() if id(p) not in emb]
    opt = torch.optim.Adam([{"params": dense, "lr": lr},
                            {"params": model.embedding_parameters(), "lr": 10 * lr}])
    history = []
    for _ in range(steps):
        losses = loss_values(model, model(batch), batch)
        main = losses[model.task.main]
        total = main + model.task.aux_weight * sum(v for k, v in losses.items()
                                                   if k != model.task.main)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(main.item())
    return history


@pytest.mark.parametrize("name", MODELS)
def test_a_tiny_batch_is_overfitted(name, vocab, batch):
    torch.manual_seed(0)
    model = build_model(name, MAC, vocab, FULL)
    history = _train(model, batch, 100)
    assert history[-1] < 0.01 < 0.5 < history[0]
    model.eval()
    with torch.inference_mode():
        assert ((model.probabilities(batch)["last"] > 0.5).float() == batch["labels"][:, 0]).all()


@pytest.mark.parametrize("name", ["natal", "moae"])
def test_knowledge_flows_from_aux_to_main_only(name, vocab, batch):
    torch.manual_seed(0)
    model = build_model(name, MAC, vocab, FULL)
    model.eval()
    before = model(batch).logits
    with torch.no_grad():
        model.aux_towers["first"].hidden[1].weight.add_(0.5)
    after = model(batch).logits
    assert not torch.allclose(after["last"], before["last"])
    assert torch.equal(after["linear"], before["linear"])
    main_parts = [model.main_tower]
    if name == "moae":
        level = model.extraction.levels[0]
        main_parts += [level.private["last"], level.gates["last"]]
    with torch.no_grad():
        for part in main_parts:
            for p in part.parameters():
                p.add_(torch.randn_like(p))
    moved = model(batch).logits
    assert not torch.allclose(moved["last"], after["last"])
    for view in FULL.aux:
        assert torch.equal(moved[view], after[view]), view


_PER_VIEW = {"towers", "gates", "private", "task_private", "task_gates", "task_self_gates"}


def _aux_only(model, name: str) -> bool:
    """Parameters only auxiliary losses can reach, by their place in the model: modules keyed
    by an auxiliary view (for NATAL and MoAE only the auxiliary output layers, since the main
    loss reaches the rest through fusion)."""
    parts = name.split(".")
    if isinstance(model, KnowledgeTransferModel):
        return parts[0] == "aux_towers" and parts[2] == "out"
    if parts[1] == "levels" and parts[3] == "private" \
            and int(parts[2]) < len(getattr(model, parts[0]).levels) - 1:
        return False        # the shared gate of a lower level passes them on to every view
    return any(key in _PER_VIEW and view in model.task.aux
               for key, view in zip(parts[:-1], parts[1:]))


def _grads(model, batch, weight: float) -> dict[str, torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    losses = loss_values(model, model(batch), batch)
    main = losses[model.task.main]
    (main + weight * sum(v for k, v in losses.items() if k != model.task.main)).backward()
    return {n: p.grad for n, p in model.named_parameters()}


def _zero(g: torch.Tensor | None) -> bool:
    return g is None or not g.abs().sum().item()


@pytest.mark.parametrize("name,options", [(m, None) for m in MODELS[1:]]
                         + [(m, options) for m, options in PAPER_FORMS.items()])
def test_no_aux_only_parameter_gets_gradient_with_aux_weight_zero(name, options, vocab, batch):
    torch.manual_seed(0)
    model = build_model(name, MAC, vocab, FULL, model_spec(name).make_config(options))
    aux_only = [n for n, _ in model.named_parameters() if _aux_only(model, n)]
    assert aux_only
    without = _grads(model, batch, 0.0)
    assert all(_zero(without[n]) for n in aux_only)
    with_aux = _grads(model, batch, 1.0)
    assert all(not _zero(with_aux[n]) for n in aux_only)
    if options is None:     # the reference topologies: main reaches every other parameter
        assert {n for n, g in without.items() if _zero(g)} == set(aux_only)


@pytest.mark.parametrize("name", ["mmoe", "ple", "home", "moae"])
def test_gates_in_models_sum_to_one(name, vocab, batch):
    options = {"mmoe": {"experts": 3}, "ple": {"extraction": {"levels": 2}},
               "moae": {"extraction": {"levels": 2}}}.get(name, {})
    model = build_model(name, MAC, vocab, FULL, model_spec(name).make_config(options))
    seen = []
    for module in model.modules():
        if isinstance(module, SoftmaxGate):
            module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    model(batch)
    assert seen
    for w in seen:
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[0]))


def test_cat_head_has_one_logit_per_joint_outcome(vocab, batch):
    model = build_model("natal", MAC, vocab, Task("last", (CAT,)))
    out = model(batch)
    assert out.logits[CAT].shape == (64, 2 ** len(MAC.labels))
    assert CAT not in model.probabilities(batch)
    loss = loss_values(model, out, batch)[CAT]
    want = torch.nn.functional.cross_entropy(out.logits[CAT], (batch["labels"] * torch.tensor(
        [1.0, 2.0, 4.0, 8.0])).sum(1).long())
    torch.testing.assert_close(loss, want)


def test_same_seed_same_model(vocab, batch):
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(build_model("moae", MAC, vocab, FULL)(batch).logits["last"])
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_models_run_on_prepared_batches(random_mac):
    dataset = prepare(random_mac, MAC)
    batch = next(iter(DayBatches(dataset.train[0], 128)))
    for name in MODELS:
        torch.manual_seed(0)
        model = build_model(name, dataset.schema, dataset.vocab, FULL)
        out = model(batch)
        total = sum(loss_values(model, out, batch).values())
        total.backward()
        assert torch.isfinite(total) and out.logits["last"].shape == (128,)


def test_sparse_embeddings_give_sparse_gradients(vocab, batch):
    config = model_spec("natal").make_config({"encoder": {"sparse_embeddings": True}})
    model = build_model("natal", MAC, vocab, FULL, config)
    loss_values(model, model(batch), batch)["last"].backward()
    assert all(p.grad.is_sparse for p in model.embedding_parameters())
    dense = {id(p) for p in model.embedding_parameters()}
    assert not any(p.grad.is_sparse for p in model.parameters()
                   if id(p) not in dense and p.grad is not None)


@pytest.mark.parametrize("name", model_names())
def test_a_model_takes_the_cartesian_view_exactly_when_its_traits_say_so(name, vocab, batch):
    spec = model_spec(name)
    task = Task("last", ("first", CAT))
    if spec.traits.takes_cat:
        with torch.device("meta"):
            spec.build(MAC, vocab, task)
    else:
        with pytest.raises(ConfigError, match=f"{spec.traits.display_name} .* no 'cat' view"):
            spec.build(MAC, vocab, task)
