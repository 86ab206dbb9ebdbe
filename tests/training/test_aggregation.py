"""UPGrad, MGDA and CAGrad through torchjd, against the update computed directly on two given
gradients, and their promises: UPGrad's update d conflicts with no task gradient g_t, and MGDA's
has <g_t, d> >= |d|² for every task."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.errors import ConfigError
from malt.training import aggregation
from malt.training.distributed import World
from malt.training.grad_methods import task_gradients

pytest.importorskip("torchjd")
pytest.importorskip("quadprog")

G1, G2 = torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 1.0])


def _update(method: str, rows: torch.Tensor, cagrad_c: float = 0.5) -> torch.Tensor:
    return aggregation.aggregate_rows(rows, aggregation.weighting_of(method, cagrad_c))[0]


def _task_gradients(tasks: int, dim: int, seed: int) -> torch.Tensor:
    """`tasks` random gradients of `dim` entries (float64), one per row."""
    return torch.randn(tasks, dim, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def test_upgrad_averages_each_gradient_projected_onto_the_other_ones_half_space():
    # g1·g2 = -0.5 < 0: g1 - (g1·g2 / |g2|²) g2 = (0.8, 0.4), g2 - (g1·g2 / |g1|²) g1 = (0, 1);
    # torchjd's projector regularises the Gramian by 1e-4, hence the tolerance
    expected = ((G1 + 0.4 * G2) + (G2 + 0.5 * G1)) / 2
    torch.testing.assert_close(_update("upgrad", torch.stack([G1, G2])), expected,
                               atol=2e-4, rtol=0)
    # without a conflict, the mean
    aligned = torch.stack([G1, torch.tensor([0.5, 1.0])])
    torch.testing.assert_close(_update("upgrad", aligned), aligned.mean(0), atol=2e-4, rtol=0)


def test_mgda_is_the_least_norm_point_between_two_gradients():
    # α g1 + (1 - α) g2 with α = (g2 - g1)·g2 / |g2 - g1|² = 1.75 / 3.25
    alpha = 1.75 / 3.25
    torch.testing.assert_close(_update("mgda", torch.stack([G1, G2])),
                               alpha * G1 + (1 - alpha) * G2, atol=1e-4, rtol=0)


def test_cagrad_matches_its_objective_minimised_over_a_fine_grid():
    pytest.importorskip("cvxpy")
    rows, c = torch.stack([G1, 2 * G2]).double(), 0.5
    g0 = rows.mean(0)
    sqrt_phi = c * g0.norm()
    a = torch.linspace(0, 1, 100_001, dtype=torch.float64)[:, None]
    g_w = a * rows[0] + (1 - a) * rows[1]
    best = g_w[torch.argmin(g_w @ g0 + sqrt_phi * g_w.norm(dim=1))]
    expected = g0 + sqrt_phi * best / best.norm()
    torch.testing.assert_close(_update("cagrad", rows, cagrad_c=c), expected, atol=1e-4, rtol=0)
    orthogonal = torch.eye(2, dtype=torch.float64)  # by symmetry (1 + c) times the mean
    torch.testing.assert_close(_update("cagrad", orthogonal, cagrad_c=c),
                               (1 + c) * orthogonal.mean(0), atol=1e-4, rtol=0)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 4), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_upgrad_never_conflicts_with_a_task_gradient(tasks, dim, seed):
    rows = _task_gradients(tasks, dim, seed)
    update = _update("upgrad", rows)
    # <g_t, d> >= 0 up to torchjd's regularisation (1e-4 on the diagonal of the normalised
    # Gramian), which leaves at most about 1e-3 of its trace; a plain mean conflicts by far more
    slack = 2e-3 * rows.square().sum()
    assert (rows @ update >= -slack).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 4), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_every_task_gradient_projects_onto_the_mgda_update_at_least_its_length(tasks, dim, seed):
    rows = _task_gradients(tasks, dim, seed)
    update = _update("mgda", rows)
    # d, the least-norm point of the hull, has <g_t, d> >= |d|² (so no conflict) for every t,
    # up to where Frank-Wolfe stops (a step under 1e-3, or 100 iterations): 3.4e-3 of the
    # trace at worst over 8,000 random draws; a plain mean misses by up to 0.25 of it
    slack = 1e-2 * rows.square().sum()
    assert (rows @ update >= update @ update - slack).all()


def _toy():
    """A shared layer, a main head and two auxiliary heads, and a shared vector the second
    auxiliary task does not reach."""
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 3)
    heads = torch.nn.ModuleList(torch.nn.Linear(3, 1) for _ in range(3))
    extra = torch.nn.Parameter(torch.tensor([0.5, -1.0]))
    h = torch.relu(shared(torch.randn(16, 4)))
    losses = [heads[i](h).pow(2).mean() * (i + 1) - (i == 2) * h.sum() for i in range(3)]
    losses[0] = losses[0] + extra.square().sum()
    losses[1] = losses[1] - 3 * extra.sum()
    params = [*shared.parameters(), *heads.parameters(), extra]
    return params, task_gradients(losses, params, World())


def _shared(grads_of_task, params) -> torch.Tensor:
    """The flattened shared parameters' part (0, 1 and 8), zeros where the task does not reach."""
    return torch.cat([(grads_of_task[i] if grads_of_task[i] is not None
                       else torch.zeros_like(params[i])).reshape(-1) for i in (0, 1, 8)])


@pytest.mark.parametrize("method", ["upgrad", "mgda"])
def test_aggregate_updates_shared_parameters_and_leaves_the_towers_their_own(method):
    params, grads = _toy()
    assert grads[2][8] is None
    combined, weights = aggregation.aggregate(grads, params,
                                              aggregation.weighting_of(method, 0.5),
                                              aux_weight=0.3)
    flat = _shared(combined, params)
    # shared: Σ_t weight_t g_t, the weights λ-scaled for the auxiliary tasks ...
    torch.testing.assert_close(flat, sum(w * _shared(g, params) for w, g in zip(weights, grads)))
    # ... and the aggregation of the rows g_m, λ g_1, λ g_2
    rows = torch.stack([scale * _shared(g, params) for scale, g in zip((1.0, 0.3, 0.3), grads)])
    torch.testing.assert_close(flat, _update(method, rows))
    torch.testing.assert_close(combined[2], grads[0][2])
    torch.testing.assert_close(combined[4], 0.3 * grads[1][4])
    torch.testing.assert_close(combined[7], 0.3 * grads[2][7])
    if method == "upgrad":
        for row in rows:
            assert row @ flat >= -1e-6


def test_a_missing_package_is_a_config_error_naming_it(monkeypatch):
    real = aggregation.importlib.util.find_spec
    monkeypatch.setattr(aggregation.importlib.util, "find_spec",
                        lambda name: None if name in ("torchjd", "cvxpy") else real(name))
    with pytest.raises(ConfigError, match=r"^train.grad_method 'mgda' needs torchjd, which is "
                                          r"not installed: pip install 'malt\[aux\]'$"):
        aggregation.check_available("mgda")
    with pytest.raises(ConfigError, match=r"^train.grad_method 'cagrad' needs torchjd, cvxpy, "):
        aggregation.check_available("cagrad")
    with pytest.raises(ValueError, match="unknown aggregator 'pcgrad'"):
        aggregation.weighting_of("pcgrad", 0.5)
