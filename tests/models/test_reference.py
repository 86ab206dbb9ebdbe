"""The reference topologies: parameter counts of the MAC release, the self-auxiliary MoAE; and
the forms beyond the release (stacked PLE, the paper's HoME)."""

from __future__ import annotations

import pytest
import torch

from malt.data import MAC
from malt.data.task import CAT, Task
from malt.errors import ConfigError
from malt.layers import SelfGate
from malt.models import build_model, model_spec
from models.conftest import loss_values

AUX3 = ("first", "mta", "linear")


def _release(name: str):
    return model_spec(name).make_config(release_defaults=True)


def _ple(**extraction):
    return model_spec("ple").make_config({"extraction": extraction})


def _home(**options):
    return model_spec("home").make_config(options)
# reference_pymal.md §7, "effective" column (the release's unused expert and identity
# self-gates excluded), and the number of binary heads of each configuration.
EFFECTIVE = [
    ("base", Task("last"), 141_426, 1),
    ("shared_bottom", Task("last", AUX3), 271_320, 4),
    ("shared_bottom", Task("first", ("last",)), 184_724, 2),
    ("mmoe", Task("last", AUX3), 360_416, 4),
    ("ple", Task("last", AUX3), 619_616, 4),
    ("home", Task("last", AUX3), 633_056, 4),
    ("natal", Task("last", (*AUX3, CAT)), 422_824, 4),
    ("natal", Task("first", ("last",)), 227_956, 2),
    ("moae", Task("last", (*AUX3, CAT)), 858_194, 4),
    ("moae", Task("last", AUX3), 705_856, 4),
    ("moae", Task("first", ("last",)), 402_104, 2),
    ("moae", Task("last"), 271_732, 1),          # self-auxiliary
]


@pytest.mark.parametrize("name,task,effective,binary_heads", EFFECTIVE,
                         ids=[f"{n}-{len(t.aux)}aux" for n, t, _, _ in EFFECTIVE])
def test_reference_dense_parameter_counts(name, task, effective, binary_heads, vocab):
    with torch.device("meta"):
        model = build_model(name, MAC, vocab, task, _release(name))
    dense, embedding = model.parameter_counts()
    # One logit per binary head instead of the release's two: 33 weights fewer each.
    assert dense == effective - 33 * binary_heads
    assert abs(dense - effective) / effective < 0.01
    assert embedding == 16 * 16 * 50


def test_malts_defaults_have_the_reference_counts(vocab):
    with torch.device("meta"):
        counts = [build_model("moae", MAC, vocab, Task("last", (*AUX3, CAT)), config)
                  .parameter_counts() for config in (None, _release("moae"))]
    assert counts[0] == counts[1]


def test_self_auxiliary_moae(vocab, batch):
    torch.manual_seed(0)
    model = build_model("moae", MAC, vocab, Task("last", aux_weight=0.3), _release("moae"))
    assert model.self_aux
    out = model(batch)
    assert list(out.logits) == ["last"] and list(out.knowledge) == ["last@self"]
    rep = model.extraction(model.encoder(batch))["last"]
    for got, want in zip(out.knowledge["last@self"], model.main_tower.plain(rep)):
        torch.testing.assert_close(got, want)
    terms = model.loss_terms(out, batch)
    assert [(t.name, t.role) for t in terms] == [("last", "main"), ("last@self", "auxiliary")]
    # The release's (1 + λ) · L, and gradient methods see the copy as a task of its own.
    torch.testing.assert_close(terms.total(0.3), 1.3 * terms["last"].value)
    assert len(terms.tasks()) == 2
    assert model.main_tower.fusion[0].in_features == 2 * 128
    # Without the release's defaults, or with auxiliary views, MoAE is the plain model.
    assert not build_model("moae", MAC, vocab, Task("last")).self_aux
    assert not build_model("moae", MAC, vocab, Task("last", ("first",)),
                           _release("moae")).self_aux


def test_stacked_ple_levels(vocab, batch):
    task = Task("last", AUX3)
    with torch.device("meta"):
        one = build_model("ple", MAC, vocab, task).parameter_counts()[0]
        two = build_model("ple", MAC, vocab, task, _ple(levels=2)).parameter_counts()[0]
    level_two = 5 * (128 + 256 * 256 + 256) + 4 * (256 * 2 + 2)   # experts + task gates
    shared_gate = 336 * 5 + 5                                      # level one's shared gate
    assert two - one == level_two + shared_gate
    torch.manual_seed(0)
    model = build_model("ple", MAC, vocab, task, _ple(levels=3, shared_experts=2, task_experts=2))
    assert len(model.bottom.levels) == 3
    out = model(batch)
    assert all(z.shape == (64,) for z in out.logits.values())


def test_paper_home(vocab, batch):
    torch.manual_seed(0)
    task = Task("last", ("first", "linear", "mta", CAT))
    model = build_model("home", MAC, vocab, task, _home(variant="paper"))
    home = model.bottom
    assert home.groups == [("last", "first"), ("linear", "mta", CAT)]
    assert len(home.meta_shared) == 2 and len(home.meta_category) == 2
    expert = home.task_private["last"]
    assert expert.norm is not None and expert.feature_gate is not None and expert.se is None
    assert all(g.linear.out_features == 1 for g in model.modules() if isinstance(g, SelfGate))
    # h_t by hand for the main view.
    x = model.encoder(batch)
    shared = [e(x) for e in home.meta_shared]
    own = home.meta_category[0](x)
    z_sh = sum(w.unsqueeze(1) * r for w, r in zip(home.meta_shared_gate(x).T,
                                                  shared + [own, home.meta_category[1](x)]))
    g = home.meta_gates[0](x)
    z_c = g[:, :1] * shared[0] + g[:, 1:2] * shared[1] + g[:, 2:] * own \
        + home.meta_self_gates[0](x) * own
    q = torch.cat([z_sh, z_c], 1)
    parts = [home.task_shared(z_sh), home.task_category[0](z_c), home.task_private["last"](z_c)]
    want = sum(w.unsqueeze(1) * r for w, r in zip(home.task_gates["last"](q).T, parts)) \
        + home.task_self_gates["last"](q) * parts[2]
    torch.testing.assert_close(home(x)["last"], want)
    # Self-gates learn (in the release they are constant identities).
    loss_values(model, model(batch), batch)["last"].backward()
    assert home.task_self_gates["last"].linear.weight.grad.abs().sum() > 0
    assert home.meta_self_gates[0].linear.weight.grad.abs().sum() > 0


def test_paper_home_groups_must_cover_the_views(vocab):
    config = _home(variant="paper", groups=(("last",), ("first",)))
    with pytest.raises(ConfigError, match="every view"):
        build_model("home", MAC, vocab, Task("last", ("linear",)), config)
    model = build_model("home", MAC, vocab, Task("last", ("linear",)),
                        _home(variant="paper", groups=[["last", "linear"]]))
    assert model.bottom.groups == [("last", "linear")]


def test_knowledge_detach_stops_main_gradient_at_the_aux_towers(vocab, batch):
    for detach in (False, True):
        torch.manual_seed(0)
        model = build_model("natal", MAC, vocab, Task("last", ("first",)),
                            model_spec("natal").make_config({"knowledge_detach": detach}))
        loss_values(model, model(batch), batch)["last"].backward()
        grad = model.aux_towers["first"].hidden[0].weight.grad
        assert (grad is None) is detach
