"""Row-wise Adam against torch's dense Adam: the same weights at the cost of the touched rows."""

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.training import row_adam
from malt.training.row_adam import RowAdam, distinct_rows, window

ROWS, DIM = 12, 3


def _tables(sparse: bool) -> tuple[torch.nn.Embedding, torch.nn.Linear]:
    torch.manual_seed(0)
    return torch.nn.Embedding(ROWS, DIM, sparse=sparse), torch.nn.Linear(DIM, 1)


def _train(batches: list[list[int]], *, rows: bool, lr: float = 0.05, warmup: int = 4,
           watch: bool = True, loss_scale: float = 1.0
           ) -> tuple[torch.nn.Embedding, torch.optim.Optimizer]:
    """Trains a table (and a fixed head) on a loss that depends on the looked-up weights."""
    table, head = _tables(sparse=rows)
    head.requires_grad_(False)
    optimizer = RowAdam(table.parameters(), lr=lr) if rows else \
        torch.optim.Adam(table.parameters(), lr=lr)
    if rows and watch:
        optimizer.watch(table)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    for ids in batches:
        ((head(table(torch.tensor(ids))) - 1.0).pow(2).sum() * loss_scale).backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    return table, optimizer


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=5), min_size=1,
                max_size=40))
def test_after_catching_up_the_tables_are_dense_adams(batches):
    dense, _ = _train(batches, rows=False)
    rows, optimizer = _train(batches, rows=True)
    optimizer.catch_up()
    torch.testing.assert_close(rows.weight, dense.weight, rtol=0, atol=2e-5)


@pytest.mark.parametrize("loss_scale", [1e-6, 1e-7, 1e-8, 1e-9])
def test_gradients_near_epsilon_move_the_rows_as_dense_adam_does(loss_scale):
    # There ε is a large part of Adam's denominator, and it varies over the idle steps while
    # √(1 − β2^u) grows: the closed form's weighted mean of it keeps within 0.5% of the moves.
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, ROWS, (3,), generator=g).tolist() for _ in range(60)]
    start = _tables(sparse=False)[0].weight.detach()
    dense, _ = _train(batches, rows=False, loss_scale=loss_scale)
    rows, optimizer = _train(batches, rows=True, loss_scale=loss_scale)
    optimizer.catch_up()
    moved = (dense.weight - start).abs().max()
    assert moved > 0.1
    assert (rows.weight - dense.weight).abs().max() < 5e-3 * moved


def test_the_rows_a_step_reads_are_brought_up_to_date_first():
    # Row 1 idles through steps 2-5 and is read again at step 6: without the refresh the loss
    # of step 6 would see its stale weight.
    batches = [[1, 2], [2], [3], [2], [3], [1]]
    dense, _ = _train(batches, rows=False)
    refreshed, optimizer = _train(batches, rows=True)
    stale, stale_optimizer = _train(batches, rows=True, watch=False)
    optimizer.catch_up()
    stale_optimizer.catch_up()
    torch.testing.assert_close(refreshed.weight, dense.weight, rtol=0, atol=1e-6)
    assert (stale.weight[1] - dense.weight[1]).abs().max() > 1e-4


def test_untouched_rows_keep_their_weights_and_a_step_costs_only_its_rows():
    before = _tables(sparse=True)[0].weight.detach().clone()
    table, optimizer = _train([[1, 2], [2, 5]], rows=True)
    state = optimizer.state[table.weight]
    assert state["last_step"].tolist() == [2 if i in (2, 5) else 1 if i == 1 else 0
                                           for i in range(ROWS)]
    moved = (table.weight.detach() != before).any(1)
    assert moved.tolist() == [i in (1, 2, 5) for i in range(ROWS)]
    optimizer.catch_up()
    assert state["last_step"].tolist() == [2 if i in (1, 2, 5) else 0 for i in range(ROWS)]
    assert state["pending"].dtype == torch.float64


def test_catching_up_twice_or_mid_run_changes_nothing_but_rounding():
    batches = [[1, 2], [2, 5], [7], [1, 7], [3], [5], [2]]
    dense, _ = _train(batches, rows=False)
    table, head = _tables(sparse=True)
    optimizer = RowAdam(table.parameters(), lr=0.05)
    optimizer.watch(table)
    for step, ids in enumerate(batches):
        (head(table(torch.tensor(ids))) - 1.0).pow(2).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 2:
            optimizer.catch_up()
    optimizer.catch_up()
    caught_up = table.weight.detach().clone()
    optimizer.catch_up()
    torch.testing.assert_close(table.weight.detach(), caught_up, rtol=0, atol=0)
    # `dense` ran with the warm-up of _train: compare against the same schedule-free run.
    plain, _ = _train(batches, rows=False, warmup=1)
    torch.testing.assert_close(table.weight, plain.weight, rtol=0, atol=1e-5)
    assert (plain.weight - dense.weight).abs().max() > 1e-3  # the schedule matters


def test_a_restored_optimizer_continues_bitwise_and_keeps_its_state_dtypes():
    first, later = [[1, 2], [2, 5], [7]], [[1, 7], [3], [5, 1]]
    table, optimizer = _train(first, rows=True)
    twin = copy.deepcopy(table)
    restored = RowAdam(twin.parameters(), lr=0.05)
    restored.watch(twin)
    restored.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    saved = optimizer.state[table.weight]
    assert {key: value.dtype for key, value in restored.state[twin.weight].items()
            if torch.is_tensor(value)} == {key: value.dtype for key, value in saved.items()
                                           if torch.is_tensor(value)}
    assert saved["pending"].dtype == torch.float64 and saved["last_step"].dtype == torch.int32
    head = _tables(sparse=True)[1]
    for t, o in ((table, optimizer), (twin, restored)):
        for ids in later:
            (head(t(torch.tensor(ids))) - 1.0).pow(2).sum().backward()
            o.step()
            o.zero_grad()
        o.catch_up()
    torch.testing.assert_close(twin.weight, table.weight, rtol=0, atol=0)


def test_pending_grows_past_its_first_capacity():
    table, optimizer = _train([[step % ROWS] for step in range(150)], rows=True)
    state = optimizer.state[table.weight]
    assert state["step"] == 150 and state["pending"].numel() > 150
    dense, _ = _train([[step % ROWS] for step in range(150)], rows=False)
    optimizer.catch_up()
    torch.testing.assert_close(table.weight, dense.weight, rtol=0, atol=2e-5)


def test_an_evaluation_forward_pass_leaves_the_state_alone():
    table, optimizer = _train([[1, 2], [3]], rows=True)
    last = optimizer.state[table.weight]["last_step"].clone()
    table.eval()
    table(torch.tensor([1, 2]))
    assert torch.equal(optimizer.state[table.weight]["last_step"], last)
    table.train()
    table(torch.tensor([1, 2]))
    assert optimizer.state[table.weight]["last_step"][1].item() == 2


def test_the_window_holds_every_idle_step_above_a_billionth():
    for betas in ((0.9, 0.999), (0.5, 0.9), (0.0, 0.99)):
        ratio = betas[0] / math.sqrt(betas[1])
        n = window(betas)
        assert ratio ** n < 1e-9 and (n == 1 or ratio ** (n - 1) >= 1e-9)
    assert window((0.9, 0.999)) == 198


def test_pending_holds_every_steps_idle_move_and_its_eps_weight():
    table = torch.nn.Embedding(5, 2, sparse=True)
    optimizer = RowAdam(table.parameters(), lr=0.1)
    beta1, beta2 = 0.9, 0.999
    ratio, steps, span = beta1 / math.sqrt(beta2), 210, window((beta1, beta2))
    rates = []
    for u in range(1, steps + 1):
        optimizer.param_groups[0]["lr"] = 0.1 * min(1.0, u / 50)  # a warm-up
        rates.append(0.1 * min(1.0, u / 50) * math.sqrt(1 - beta2 ** u) / (1 - beta1 ** u))
        table.weight.grad = torch.sparse_coo_tensor(torch.tensor([[u % 5]]), torch.ones(1, 2),
                                                    (5, 2), check_invariants=True)
        optimizer.step()
    expected = torch.zeros(steps, 2, dtype=torch.float64)
    for s in range(steps):
        for u in range(s + 1, min(steps, s + span) + 1):
            move = rates[u - 1] * ratio ** (u - s)
            expected[s, 0] += move
            expected[s, 1] += move * math.sqrt(1 - beta2 ** u) * beta2 ** (-(u - s) / 2)
    pending = optimizer.state[table.weight]["pending"]
    assert pending.dtype == torch.float64 and pending.shape[0] > steps
    torch.testing.assert_close(pending[:steps], expected, rtol=1e-12, atol=0)
    assert not pending[steps:].any()


def test_a_step_sums_the_gradient_over_the_rows_its_lookup_found(monkeypatch):
    table, optimizer = _train([[1, 2], [2, 2, 5]], rows=True)
    calls = []
    distinct = row_adam.distinct_rows
    monkeypatch.setattr(row_adam, "distinct_rows",
                        lambda *a, **k: calls.append(1) or distinct(*a, **k))
    head = _tables(sparse=True)[1]
    (head(table(torch.tensor([3, 5, 3]))) - 1.0).pow(2).sum().backward()
    optimizer.step()
    assert len(calls) == 1  # once in the lookup's refresh, not again in the step
    dense, _ = _train([[1, 2], [2, 2, 5], [3, 5, 3]], rows=False, warmup=1)
    plain, plain_optimizer = _train([[1, 2], [2, 2, 5], [3, 5, 3]], rows=True, warmup=1)
    plain_optimizer.catch_up()
    torch.testing.assert_close(plain.weight, dense.weight, rtol=0, atol=1e-6)


def test_a_lookup_of_a_row_never_updated_leaves_it_alone():
    table, optimizer = _train([[1, 2]], rows=True)
    before = table.weight.detach().clone()
    table(torch.tensor([7, 1]))
    state = optimizer.state[table.weight]
    assert state["last_step"][7].item() == 0 and state["last_step"][1].item() == 1
    assert torch.equal(table.weight.detach()[7], before[7])


def test_a_zero_learning_rate_and_zero_gradients_move_nothing():
    table = torch.nn.Embedding(4, 2, sparse=True)
    before = table.weight.detach().clone()
    optimizer = RowAdam(table.parameters(), lr=0.0)
    optimizer.watch(table)
    for ids in ([1], [2], [1, 3]):
        (table(torch.tensor(ids)).sum() * 0.0).backward()
        optimizer.step()
        optimizer.zero_grad()
    optimizer.catch_up()
    torch.testing.assert_close(table.weight.detach(), before, rtol=0, atol=0)


def test_beta1_zero_is_adam_without_momentum():
    table = torch.nn.Embedding(6, 2, sparse=True)
    twin = torch.nn.Embedding(6, 2)
    twin.load_state_dict(table.state_dict())
    rows = RowAdam(table.parameters(), lr=0.1, betas=(0.0, 0.99))
    rows.watch(table)
    dense = torch.optim.Adam(twin.parameters(), lr=0.1, betas=(0.0, 0.99))
    for ids in ([1, 2], [3], [1], [2, 3]):
        for t, o in ((table, rows), (twin, dense)):
            t(torch.tensor(ids)).pow(2).sum().backward()
            o.step()
            o.zero_grad()
    rows.catch_up()
    torch.testing.assert_close(table.weight, twin.weight, rtol=0, atol=1e-6)


def test_bad_input_is_refused():
    table = torch.nn.Embedding(4, 2)
    # r = β1/√β2 must be below 1 for the idle moves to fade, and β2 < 1 for v to.
    for betas in ((0.99, 0.9), (0.9, 0.81), (0.5, 1.0), (-0.1, 0.9)):
        with pytest.raises(ValueError, match="beta1 < sqrt"):
            RowAdam(table.parameters(), lr=0.1, betas=betas)
    optimizer = RowAdam(table.parameters(), lr=0.1)
    table(torch.tensor([1])).sum().backward()
    with pytest.raises(ValueError, match="sparse gradients"):
        optimizer.step()
    with pytest.raises(ValueError, match="closure"):
        optimizer.step(lambda: 0.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.lists(st.integers(0, 10**6), min_size=1, max_size=200))
def test_distinct_rows_are_torch_uniques_whether_marked_or_sorted(table_rows, draws):
    ids = torch.tensor(draws) % table_rows
    expected_rows, expected_inverse = torch.unique(ids, return_inverse=True)
    rows, inverse = distinct_rows(ids, table_rows)
    assert torch.equal(rows, expected_rows) and torch.equal(inverse, expected_inverse)


def test_distinct_rows_marks_small_tables_and_sorts_large_ones(monkeypatch):
    calls = []
    unique = torch.unique
    monkeypatch.setattr(torch, "unique", lambda *a, **k: calls.append(1) or unique(*a, **k))
    ids = torch.tensor([7, 2, 7, 0])
    distinct_rows(ids, row_adam.MARK_RATIO * ids.numel())
    assert calls == []
    rows, inverse = distinct_rows(ids, row_adam.MARK_RATIO * ids.numel() + 1)
    assert calls == [1]
    assert rows.tolist() == [0, 2, 7] and inverse.tolist() == [2, 1, 2, 0]


def test_a_first_step_is_adams_formula_by_hand():
    lr, (beta1, beta2), eps = 0.1, (0.9, 0.999), 1e-8
    table = torch.nn.Embedding(4, 2, sparse=True)
    before = table.weight.detach().clone()
    optimizer = RowAdam(table.parameters(), lr=lr, betas=(beta1, beta2), eps=eps)
    optimizer.watch(table)
    coefficients = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])
    (table(torch.tensor([2, 0, 2])) * coefficients).sum().backward()
    optimizer.step()
    # Row 2 was looked up twice: its gradient is the sum of both coefficients' rows.
    grad = {0: torch.tensor([0.5, 3.0]), 2: torch.tensor([0.0, -1.75])}
    for row in range(4):
        if row not in grad:
            assert torch.equal(table.weight[row], before[row])
            continue
        m, v = (1 - beta1) * grad[row], (1 - beta2) * grad[row] ** 2
        step = lr * (m / (1 - beta1)) / ((v / (1 - beta2)).sqrt() + eps)
        torch.testing.assert_close(table.weight[row], before[row] - step, rtol=0, atol=1e-7)
