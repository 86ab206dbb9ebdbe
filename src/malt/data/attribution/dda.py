"""Data-driven attribution: Shapley shares under a fitted noisy-OR conversion model.

Model. Every click i of a path independently "triggers" the conversion with probability

    p_i = sigmoid(b + a[first rank of i] + c[last rank of i] + sum_g e_g[feature g of i])

where the first rank counts clicks before i in its path and the last rank clicks after it (both
capped at `POSITION_BUCKETS - 1`) and the optional features are categorical click attributes
(a channel, a campaign, a context field...). A path converts when at least one click triggers:

    P(convert | clicks S) = 1 - prod_{i in S} (1 - p_i).

Fit. The parameters are the maximum a-posteriori estimate under a N(0, 1 / l2) prior (the bias is
not penalised), over ALL paths: the journeys that converted and the click paths that did not.
Optimisation is full-batch L-BFGS in float64 from zero, so the fit is deterministic.

Credit. The conversion probability of a journey is shared among its clicks by Shapley values of
the game v(S) = 1 - prod_{i in S}(1 - p_i). By Owen's multilinear-extension formula

    phi_i = p_i * integral_0^1 prod_{j != i} (1 - t p_j) dt,

a polynomial integral evaluated by Gauss-Legendre quadrature (exact for journeys of up to
2 * `QUADRATURE_NODES` clicks). The weights are phi_i / sum_j phi_j: in [0, 1], summing to 1 over
each journey, symmetric (equal p give the linear rule), and larger for clicks whose position and
attributes raise the conversion probability in the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from malt.data.attribution.rules import journey_ranks

POSITION_BUCKETS = 5
QUADRATURE_NODES = 32


@dataclass(frozen=True)
class Paths:
    """Click paths as (path, click) pairs.

    path: int [Q] path number; time: float [Q]; click_id: int [Q] tie-breaker;
    features: int64 [Q, G] codes in [0, cardinality_g) of G categorical click attributes.
    """

    path: np.ndarray
    time: np.ndarray
    click_id: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return len(self.path)


@dataclass(frozen=True)
class NoisyOrModel:
    """Fitted parameters: theta = [bias, first-rank (B), last-rank (B), feature tables...]."""

    theta: np.ndarray
    cardinalities: tuple[int, ...]

    def design(self, paths: Paths) -> np.ndarray:
        """int64 [Q, 3 + G] indices into `theta` of the terms summed into each click's logit."""
        return _design(paths, self.cardinalities)

    def logits(self, paths: Paths) -> np.ndarray:
        """float64 [Q] logit of the trigger probability p_i of every click."""
        return self.theta[self.design(paths)].sum(axis=1)

    @property
    def position_effects(self) -> tuple[np.ndarray, np.ndarray]:
        """Fitted first-rank and last-rank terms, float64 [B] each."""
        b = POSITION_BUCKETS
        return self.theta[1:1 + b], self.theta[1 + b:1 + 2 * b]


def _design(paths: Paths, cardinalities: tuple[int, ...]) -> np.ndarray:
    b = POSITION_BUCKETS
    rank, size = journey_ranks(paths.path, paths.time, paths.click_id)
    columns = [np.zeros(len(paths), np.int64), 1 + np.minimum(rank, b - 1),
               1 + b + np.minimum(size - 1 - rank, b - 1)]
    offset = 1 + 2 * b
    for g, card in enumerate(cardinalities):
        columns.append(offset + paths.features[:, g])
        offset += card
    return np.stack(columns, axis=1).astype(np.int64)


def fit(converted: Paths, other: Paths, cardinalities: tuple[int, ...] = (), *,
        l2: float = 1.0, max_iter: int = 200) -> NoisyOrModel:
    """Fit the noisy-OR model on converting paths and non-converting paths.

    Args:
        converted: the journeys of conversions (path = conversion number).
        other: click paths that did not convert (their own path numbering).
        cardinalities: number of codes of each of the G feature columns.
        l2: precision of the Gaussian prior on every parameter but the bias.
    """
    import torch

    if converted.features.shape[1] != len(cardinalities) or \
            other.features.shape[1] != len(cardinalities):
        raise ValueError("one cardinality per feature column is needed")
    design = np.concatenate([_design(converted, cardinalities), _design(other, cardinalities)])
    _, conv_path = np.unique(converted.path, return_inverse=True)
    _, other_path = np.unique(other.path, return_inverse=True)
    n_conv = int(conv_path.max()) + 1 if len(conv_path) else 0
    n_paths = n_conv + (int(other_path.max()) + 1 if len(other_path) else 0)
    path = np.concatenate([conv_path, n_conv + other_path]).astype(np.int64)
    is_conv = np.arange(n_paths) < n_conv
    dim = 1 + 2 * POSITION_BUCKETS + int(sum(cardinalities))
    flat_design = design.ravel()
    scale = 1.0 / max(n_paths, 1)
    prior = np.full(dim, l2)
    prior[0] = 0.0

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[design].sum(axis=1)
        # hazard = -log P(no click of the path triggers); its complement converts.
        hazard = np.maximum(np.bincount(path, weights=np.logaddexp(0.0, z),
                                        minlength=n_paths), 1e-12)
        nll = np.where(is_conv, -np.log(-np.expm1(-hazard)), hazard).sum()
        d_hazard = np.where(is_conv, -1.0 / np.expm1(hazard), 1.0)
        d_z = d_hazard[path] * np.exp(-np.logaddexp(0.0, -z))
        grad = np.bincount(flat_design, weights=np.repeat(d_z, design.shape[1]), minlength=dim)
        return (scale * (nll + 0.5 * float(prior @ theta ** 2)),
                scale * (grad + prior * theta))

    # torch's L-BFGS drives the numpy objective: its closure only needs the loss and gradient.
    theta = torch.zeros(dim, dtype=torch.float64)
    optimizer = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-7, tolerance_change=1e-10,
                                  line_search_fn="strong_wolfe")

    def closure():
        loss, grad = loss_and_grad(theta.numpy())
        theta.grad = torch.from_numpy(grad)
        return torch.tensor(loss, dtype=torch.float64)

    if n_paths:
        optimizer.step(closure)
    return NoisyOrModel(theta=theta.numpy().copy(), cardinalities=tuple(cardinalities))


def shapley_shares(path: np.ndarray, logit: np.ndarray) -> np.ndarray:
    """Normalised Shapley values of v(S) = 1 - prod_{i in S}(1 - p_i), p = sigmoid(logit).

    Args:
        path: int [Q] journey of each click; logit: float64 [Q].
    Returns:
        float64 [Q] weights in [0, 1] summing to 1 within each journey.
    """
    q = len(path)
    if q == 0:
        return np.zeros(0)
    _, group = np.unique(path, return_inverse=True)
    n_groups = int(group.max()) + 1
    logit = np.asarray(logit, dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-logit))
    nodes, node_weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    nodes, node_weights = (nodes + 1) / 2, node_weights / 2
    integral = np.zeros(q)
    for t, w in zip(nodes, node_weights):
        own = np.log1p(-t * p)
        # prod over the other clicks = exp(sum over the journey - own term); t < 1 keeps it > 0.
        integral += w * np.exp(np.bincount(group, weights=own, minlength=n_groups)[group] - own)
    log_phi = -np.logaddexp(0.0, -logit) + np.log(integral)
    peak = np.full(n_groups, -np.inf)
    np.maximum.at(peak, group, log_phi)
    phi = np.exp(log_phi - peak[group])
    return phi / np.bincount(group, weights=phi, minlength=n_groups)[group]


def dda_credit(converted: Paths, other: Paths, cardinalities: tuple[int, ...] = (), *,
               l2: float = 1.0) -> tuple[np.ndarray, NoisyOrModel]:
    """Fit on all paths and credit the converting ones: float64 [P] weights and the model."""
    model = fit(converted, other, cardinalities, l2=l2)
    return shapley_shares(converted.path, model.logits(converted)), model
