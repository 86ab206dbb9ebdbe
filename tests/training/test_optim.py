import copy

import pytest
import torch

from malt.runs.config import TrainConfig
from malt.training.optim import Optimisation, clip_gradients, fused_adam, warmup_factor
from malt.training.row_adam import RowAdam


def test_warmup_is_linear_then_constant():
    assert warmup_factor(0, 10, 1e-4) == pytest.approx(1e-4)
    assert warmup_factor(5, 10, 0.0) == pytest.approx(0.5)
    assert warmup_factor(10, 10, 1e-4) == 1.0
    assert warmup_factor(500, 10, 1e-4) == 1.0
    assert warmup_factor(0, 0, 1e-4) == 1.0


def test_embeddings_train_at_scaled_rate_and_schedule_uses_real_steps():
    model = torch.nn.ModuleDict({"emb": torch.nn.Embedding(10, 4), "lin": torch.nn.Linear(4, 1)})
    cfg = TrainConfig(lr=1e-3, embedding_lr_scale=10, warmup_fraction=0.5, warmup_start=0.0)
    opt = Optimisation(model, list(model["emb"].parameters()), cfg, total_steps=8)
    assert opt.warmup_steps == 4
    groups = opt.optimizers[0].param_groups
    assert groups[0]["lr"] == pytest.approx(0.0) and groups[1]["lr"] == pytest.approx(0.0)
    for _ in range(4):
        opt.step()
    assert groups[0]["lr"] == pytest.approx(1e-3) and groups[1]["lr"] == pytest.approx(1e-2)
    assert {id(p) for p in groups[1]["params"]} == {id(model["emb"].weight)}


def test_lazy_adam_updates_only_touched_rows():
    emb = torch.nn.Embedding(10, 4, sparse=True)
    model = torch.nn.ModuleDict({"emb": emb, "lin": torch.nn.Linear(4, 1)})
    cfg = TrainConfig(lr=1e-2, table_optimizer="lazy", warmup_fraction=0.0)
    opt = Optimisation(model, [emb.weight], cfg, total_steps=5, sparse_tables=True)
    before = emb.weight.detach().clone()
    model["lin"](emb(torch.tensor([1, 3]))).sum().backward()
    opt.step()
    changed = (emb.weight.detach() != before).any(1)
    assert changed.tolist() == [i in (1, 3) for i in range(10)]


def test_lazy_adam_keeps_the_moments_of_untouched_rows_and_counts_global_steps():
    emb = torch.nn.Embedding(10, 4, sparse=True)
    model = torch.nn.ModuleDict({"emb": emb, "lin": torch.nn.Linear(4, 1)})
    opt = Optimisation(model, [emb.weight],
                       TrainConfig(table_optimizer="lazy", warmup_fraction=0.0), total_steps=5,
                       sparse_tables=True)
    for ids in ([1, 3], [3, 5]):
        model["lin"](emb(torch.tensor(ids))).sum().backward()
        opt.step()
        opt.zero_grad()
    dense, tables = opt.optimizers
    assert isinstance(tables, torch.optim.SparseAdam)
    assert dense.param_groups[0]["lr"] == pytest.approx(3e-3) and dense.defaults["fused"] is True
    assert tables.param_groups[0]["lr"] == pytest.approx(3e-2)  # embedding_lr_scale 10
    state = tables.state[emb.weight]
    touched = state["exp_avg_sq"].abs().sum(1) > 0
    assert touched.tolist() == [i in (1, 3, 5) for i in range(10)]
    assert int(state["step"]) == 2  # row 5 was seen once, but is corrected with t = 2


def test_dense_adam_is_fused_where_torch_has_the_kernel():
    model = torch.nn.ModuleDict({"emb": torch.nn.Embedding(10, 4), "lin": torch.nn.Linear(4, 1)})
    dense = Optimisation(model, list(model["emb"].parameters()), TrainConfig(), total_steps=5)
    assert fused_adam(list(model.parameters())) is True  # CPU kernel: torch >= 2.4
    assert dense.optimizers[0].defaults["fused"] is True
    assert [g["lr"] for g in dense.optimizers[0].param_groups] == pytest.approx([3e-3, 3e-2])
    assert fused_adam([]) is None


def test_fused_adam_makes_the_loop_update():
    def train(fused: bool | None) -> torch.Tensor:
        torch.manual_seed(0)
        layer = torch.nn.Linear(6, 3)
        optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2, fused=fused)
        for step in range(5):
            layer(torch.linspace(-1, 1, 12).reshape(2, 6) * (step + 1)).pow(2).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        return layer.weight.detach()

    torch.testing.assert_close(train(True), train(None), rtol=0, atol=1e-6)


def test_warmup_starts_at_its_start_factor():
    assert warmup_factor(5, 10, 0.2) == pytest.approx(0.6)
    assert warmup_factor(9, 10, 0.2) == pytest.approx(0.92)
    assert warmup_factor(0, 1, 0.25) == pytest.approx(0.25)


@pytest.mark.parametrize("version, fused", [("2.3.1", None), ("2.4.0", True), ("2.13.0", True)])
def test_fused_cpu_adam_needs_torch_2_4(monkeypatch, version, fused):
    monkeypatch.setattr(torch, "__version__", version)
    assert fused_adam([torch.nn.Parameter(torch.zeros(2))]) is fused
    assert fused_adam([torch.nn.Parameter(torch.zeros(2, device="meta"))]) is None


@pytest.mark.parametrize("table_optimizer", ["rows", "dense", "lazy"])
def test_a_restored_optimisation_continues_like_the_original(table_optimizer):
    sparse = table_optimizer != "dense"

    def model_and_optimisation():
        torch.manual_seed(0)
        emb = torch.nn.Embedding(6, 3, sparse=sparse)
        model = torch.nn.ModuleDict({"emb": emb, "lin": torch.nn.Linear(3, 1)})
        cfg = TrainConfig(lr=1e-2, table_optimizer=table_optimizer, warmup_fraction=0.5)
        return model, Optimisation(model, [emb.weight], cfg, total_steps=8,
                                   sparse_tables=sparse)

    def step(model, opt, ids):
        model["lin"](model["emb"](torch.tensor(ids))).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()

    model, opt = model_and_optimisation()
    step(model, opt, [1, 2])
    twin, restored = model_and_optimisation()
    twin.load_state_dict(model.state_dict())
    # As through a checkpoint file: the loaded state must not share tensors with `opt`.
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    for m, o in ((model, opt), (twin, restored)):
        step(m, o, [2, 4])
        step(m, o, [5])
        o.catch_up()
    assert restored.lr == pytest.approx(opt.lr) and restored.lr < 1e-2  # mid warm-up
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())


def test_rows_updates_the_tables_with_row_adam_and_catches_up_to_dense_adam():
    def trained(table_optimizer: str) -> torch.nn.ModuleDict:
        torch.manual_seed(0)
        sparse = table_optimizer == "rows"
        emb = torch.nn.Embedding(8, 3, sparse=sparse)
        model = torch.nn.ModuleDict({"emb": emb, "lin": torch.nn.Linear(3, 1)})
        cfg = TrainConfig(lr=1e-2, table_optimizer=table_optimizer, warmup_fraction=0.5)
        opt = Optimisation(model, [emb.weight], cfg, total_steps=6, sparse_tables=sparse)
        assert isinstance(opt.optimizers[-1], RowAdam) == sparse
        for ids in ([1, 2], [2, 4], [7], [1, 7], [3]):
            model["lin"](emb(torch.tensor(ids))).pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
        opt.catch_up()
        return model

    rows, dense = trained("rows"), trained("dense")
    for a, b in zip(rows.parameters(), dense.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_the_table_optimizer_must_match_the_gradients():
    emb = torch.nn.Embedding(4, 2)
    model = torch.nn.ModuleDict({"emb": emb})
    with pytest.raises(ValueError, match="^table_optimizer 'lazy' needs sparse table gradients$"):
        Optimisation(model, [emb.weight], TrainConfig(table_optimizer="lazy"), total_steps=5)
    with pytest.raises(ValueError,
                       match="^table_optimizer 'dense' updates dense table gradients$"):
        Optimisation(model, [emb.weight], TrainConfig(table_optimizer="dense"), total_steps=5,
                     sparse_tables=True)


def test_clipping_counts_sparse_gradients_as_their_dense_equivalent():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 3, sparse=True)
    lin = torch.nn.Linear(3, 2)
    # Row 4 twice: a sparse gradient with a duplicate index, summed in the dense one.
    lin(emb(torch.tensor([4, 1, 4]))).pow(2).sum().backward()
    params = [emb.weight, *lin.parameters()]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for twin, p in zip(twins, params):
        twin.grad = p.grad.to_dense().clone()  # to_dense() of a dense tensor is itself
    norm = torch.nn.utils.clip_grad_norm_(twins, 0.05)
    assert norm > 0.05  # the clip binds
    clip_gradients(params, 0.05)
    for twin, p in zip(twins, params):
        torch.testing.assert_close(p.grad.to_dense(), twin.grad, rtol=1e-6, atol=0)
    assert emb.weight.grad.is_sparse


def test_clipping_tiny_gradients_uses_torchs_formula():
    # At a norm of 1e-5, torch's 1e-6 in max_norm / (norm + 1e-6) is a tenth of the result.
    layer = torch.nn.Linear(2, 1)
    (layer(torch.ones(1, 2)).sum() * 1e-5).backward()
    twin = torch.nn.Linear(2, 1)
    for t, p in zip(twin.parameters(), layer.parameters()):
        t.grad = p.grad.clone()
    torch.nn.utils.clip_grad_norm_(list(twin.parameters()), 1e-6)
    clip_gradients(list(layer.parameters()), 1e-6)
    for t, p in zip(twin.parameters(), layer.parameters()):
        torch.testing.assert_close(p.grad, t.grad, rtol=1e-6, atol=0)


def test_clipping_below_the_norm_leaves_gradients_alone():
    layer = torch.nn.Linear(2, 1)
    layer(torch.ones(1, 2)).sum().backward()
    before = [p.grad.clone() for p in layer.parameters()]
    clip_gradients(list(layer.parameters()), 100.0)
    for b, p in zip(before, layer.parameters()):
        torch.testing.assert_close(p.grad, b, rtol=0, atol=0)
    clip_gradients([torch.nn.Parameter(torch.zeros(2))], 1.0)  # no gradient: nothing to do
