"""Gradient aggregation of the multi-objective methods UPGrad, MGDA and CAGrad, from torchjd.

Each method turns the matrix J of the task gradients on the flattened shared parameters (one row
per task: g_m, then λ g_k for each auxiliary task k) into one update J^T a, with weights a
that torchjd's `Weighting` computes from the Gramian J J^T:

- `upgrad` (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization"): every row
  projected onto the dual cone {x : J x >= 0}, the projections averaged; the update conflicts
  with no task gradient.
- `mgda` (Désidéri 2012; Sener & Koltun 2018): the least-norm point of the convex hull of the
  rows (Frank-Wolfe).
- `cagrad` (Liu et al. 2021, "Conflict-Averse Gradient Descent"): the update closest to the
  mean gradient, within a ball of radius c |g_0| around it, that raises the worst task's
  decrease most.

Parameters outside the shared ones get their own losses' gradients, as in the plain weighted
sum (an auxiliary tower λ g_k). torchjd is an optional dependency (`pip install 'malt[aux]'`),
loaded only when a run asks for one of these methods.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import torch

from malt.errors import ConfigError
from malt.training.grad_methods import Grads, shared_matrix, unflatten_into, weighted_on_shared

AGGREGATORS = ("upgrad", "mgda", "cagrad")
"""The `train.grad_method` values this module serves."""
_NEEDS = {"upgrad": ("torchjd", "quadprog"), "mgda": ("torchjd",), "cagrad": ("torchjd", "cvxpy")}


def missing_packages(method: str) -> list[str]:
    """The packages aggregator `method` needs that are not installed here."""
    return [name for name in _NEEDS[method] if importlib.util.find_spec(name) is None]


def check_available(method: str) -> None:
    """Raise a `ConfigError` naming the missing package when `method` cannot run here."""
    missing = missing_packages(method)
    if missing:
        raise ConfigError(f"train.grad_method '{method}' needs {', '.join(missing)}, which is "
                          "not installed: pip install 'malt[aux]'")


def weighting_of(method: str, cagrad_c: float):
    """torchjd's `Weighting` of `method`: Gramian `[T, T]` -> weights `[T]`."""
    from torchjd import aggregation

    if method == "upgrad":
        return aggregation.UPGradWeighting()
    if method == "mgda":
        return aggregation.MGDAWeighting()
    if method == "cagrad":
        return aggregation.CAGradWeighting(c=cagrad_c)
    raise ValueError(f"unknown aggregator '{method}' (one of {AGGREGATORS})")


def aggregate_rows(matrix: torch.Tensor, weighting) -> tuple[torch.Tensor, torch.Tensor]:
    """The aggregated update `[n]` of `matrix` `[T, n]` and the weights `[T]` of its rows."""
    weights = weighting(matrix @ matrix.T)
    return weights @ matrix, weights


def aggregate(grads: list[Grads], params: Sequence[torch.Tensor], weighting,
              aux_weight: float) -> tuple[Grads, list[float]]:
    """Combined gradient (see the module docstring) and the weight each task's gradient gets
    in it on the shared parameters, main task first: a_m, then λ a_k."""
    matrix, shared = shared_matrix(grads, params)
    factors = matrix.new_tensor([1.0] + [aux_weight] * (len(grads) - 1))
    # the plain λ-weighted sum, whose shared part the aggregated update replaces
    combined = weighted_on_shared(grads, params, [1.0] * (len(grads) - 1), aux_weight)
    if not shared:  # nothing to aggregate: each task trains its own parameters
        return combined, factors.tolist()
    update, weights = aggregate_rows(matrix * factors[:, None], weighting)
    unflatten_into(update, shared, params, combined)
    return combined, (weights * factors).tolist()
