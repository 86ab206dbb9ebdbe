import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.training.config import TrainConfig
from malt.training.optim import Optimisation, fused_adam
from malt.training.row_adam import RowSparseAdam, summed_rows

ROWS, DIM = 40, 3


def _train(optimizer_class, steps: int = 6, lrs=(1e-2, 3e-2, 5e-3, 2e-2, 1e-2, 4e-2)):
    """Table [ROWS, DIM] after `steps` steps on batches that repeat some ids and skip most."""
    torch.manual_seed(0)
    table = torch.nn.Embedding(ROWS, DIM, sparse=True)
    optimizer = optimizer_class(table.parameters(), lr=lrs[0], betas=(0.8, 0.95), eps=1e-6)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lrs[step]  # as a learning-rate schedule does
        ids = torch.randint(0, ROWS // 2, (25,), generator=g)
        (table(ids).sin() * torch.arange(1, DIM + 1)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    return table.weight.detach(), optimizer


def test_matches_torch_sparse_adam():
    ours, _ = _train(RowSparseAdam)
    reference, _ = _train(torch.optim.SparseAdam)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    assert (ours[: ROWS // 2] - _initial()[: ROWS // 2]).abs().max() > 1e-2  # it trained


def _initial() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.nn.Embedding(ROWS, DIM, sparse=True).weight.detach()


def test_untouched_rows_keep_weights_and_moments():
    weights, optimizer = _train(RowSparseAdam)
    # ids are drawn below ROWS // 2: the upper half is never looked up
    torch.testing.assert_close(weights[ROWS // 2:], _initial()[ROWS // 2:], rtol=0, atol=0)
    state = next(iter(optimizer.state.values()))
    assert state["step"] == 6
    assert state["exp_avg"][ROWS // 2:].abs().max() == 0
    assert state["exp_avg_sq"][ROWS // 2:].abs().max() == 0
    assert state["exp_avg_sq"][: ROWS // 2].abs().max() > 0


def test_resuming_from_state_dict_continues_the_same_run():
    def run(split: bool) -> torch.Tensor:
        torch.manual_seed(0)
        table = torch.nn.Embedding(ROWS, DIM, sparse=True)
        optimizer = RowSparseAdam(table.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(3)
        for step in range(4):
            if split and step == 2:
                saved_table, saved_state = table.state_dict(), optimizer.state_dict()
                table = torch.nn.Embedding(ROWS, DIM, sparse=True)
                table.load_state_dict(saved_table)
                optimizer = RowSparseAdam(table.parameters(), lr=1e-2)
                optimizer.load_state_dict(saved_state)
            table(torch.randint(0, ROWS, (30,), generator=g)).pow(2).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        return table.weight.detach()

    torch.testing.assert_close(run(split=True), run(split=False), rtol=0, atol=0)


def test_refuses_dense_gradients_and_bad_settings():
    table = torch.nn.Embedding(5, 2)
    optimizer = RowSparseAdam(table.parameters())
    table(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        optimizer.step()
    with pytest.raises(ValueError):
        RowSparseAdam(table.parameters(), betas=(1.0, 0.9))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=40))
def test_summed_rows_equal_coalesce(ids):
    values = torch.arange(len(ids) * 2, dtype=torch.float64).reshape(-1, 2).sin()
    grad = torch.sparse_coo_tensor(torch.tensor([ids]), values, (10, 2), check_invariants=True)
    rows, summed = summed_rows(grad)
    reference = grad.coalesce()
    assert rows.tolist() == reference.indices()[0].tolist() == sorted(set(ids))
    torch.testing.assert_close(summed, reference.values(), rtol=0, atol=1e-12)


def test_optimisation_uses_row_sparse_adam_for_lazy_tables_and_fused_adam_for_dense():
    emb = torch.nn.Embedding(10, 4, sparse=True)
    model = torch.nn.ModuleDict({"emb": emb, "lin": torch.nn.Linear(4, 1)})
    lazy = Optimisation(model, [emb.weight], TrainConfig(lazy_adam=True), total_steps=5)
    assert isinstance(lazy.optimizers[1], RowSparseAdam)
    dense = Optimisation(model, [emb.weight], TrainConfig(), total_steps=5)
    fused = fused_adam(list(model.parameters()))
    assert fused is True  # torch >= 2.4 on the CPU: the tests run on 2.13
    assert dense.optimizers[0].defaults["fused"] is fused
    assert lazy.optimizers[0].defaults["fused"] is fused


def test_fused_adam_gives_the_loop_update():
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
