"""Data-driven attribution: Shapley shares under a fitted noisy-OR conversion model.

Model. Every click i of a path independently "triggers" the conversion with probability

    p_i = sigmoid(b + c[position_i, gap_i] + sum_f e_f[code of feature f of click i])

A path converts when at least one click triggers: P(convert | clicks S) = 1 - prod_i (1 - p_i).

What is learned, and from which statistics:
- `b`, the logit of a path's first click. One-click paths convert with probability sigmoid(b)
  (at the reference feature codes), so `b` is learned from how often they convert.
- `c[k, g]` for every later click: its position k (2, 3, ..., `POSITIONS` and beyond, counted
  from the start of the path) crossed with the gap g since the previous click (the buckets of
  `GAP_EDGES`). A k-click path holds the clicks of a (k-1)-click path plus one more, so the
  conversion rates of paths of different lengths and gaps tell what the k-th click adds. One
  term per (position, gap) cell, and none for the first click, keeps every term tied to a
  click type of its own: no two terms can trade off against each other without changing a
  path's probability.
- `e_f[v]` for optional categorical click features (a channel, a campaign...), measured
  against the feature's first code, which is fixed at 0.
There is deliberately no term per path length: with one, the first click's term and the
length term could trade off exactly within every length, and the split of credit between
positions would be set by the prior instead of by the data.

The fit uses every path: the journeys that converted (each click kept, grouped by journey) and
the click paths that did not (only the count of clicks per distinct click type: their loss is a
sum over clicks). Positions are identified when paths of several lengths occur, as they do in
click logs; when every path has the same length they are not, and the prior pulls the cells
toward the first click's logit (credit tends to the linear rule).

Fit. The maximum a-posteriori estimate under a N(0, 1 / l2) prior on every term but `b`,
by full-batch L-BFGS in float64 from zero, so the fit is deterministic.

Credit. The conversion probability of a journey is shared among its clicks by Shapley values of
the game v(S) = 1 - prod_{i in S}(1 - p_i). By Owen's multilinear-extension formula

    phi_i = p_i * integral_0^1 prod_{j != i} (1 - t p_j) dt,

a polynomial integral evaluated by Gauss-Legendre quadrature (exact for journeys of up to
2 * `QUADRATURE_NODES` clicks). The weights are phi_i / sum_j phi_j: in [0, 1], summing to 1 over
each journey, symmetric (equal p give the linear rule), and larger for clicks whose position,
gap and attributes raise the conversion probability in the data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from malt.data.attribution.journeys import key_codes
from malt.data.attribution.rules import sort_journeys

POSITIONS = 5
"""Positions with their own terms; later clicks share the last one."""
GAP_EDGES = (60.0, 3600.0, 86400.0)
"""Gap buckets (seconds) of a later click: <= 1 minute, <= 1 hour, <= 1 day, longer."""
QUADRATURE_NODES = 32

log = logging.getLogger(__name__)

_GAPS = len(GAP_EDGES) + 1
_REFERENCE, _BIAS, _CELLS_AT = 0, 1, 2
"""theta[0] is the fixed 0 a term without a learned value points at (the first click's cell,
a feature's first code); theta[1] is `b`; the cells follow, then the feature tables."""
_FEATURES_AT = _CELLS_AT + (POSITIONS - 1) * _GAPS


@dataclass(frozen=True)
class Paths:
    """Click paths as (path, click) pairs.

    path: int [Q] path number; time: float [Q] seconds; click_id: int [Q] tie-breaker;
    features: int64 [Q, G] codes in [0, cardinality_g) of G categorical click attributes.
    """

    path: np.ndarray
    time: np.ndarray
    click_id: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return len(self.path)

    def lengths(self) -> np.ndarray:
        """int64 [P] number of clicks of each path."""
        _, counts = np.unique(self.path, return_counts=True)
        return counts


@dataclass(frozen=True)
class NoisyOrModel:
    """Fitted parameters: theta = [0 (fixed), b, cells ((POSITIONS - 1) x gap buckets),
    feature tables (codes 1.. of each feature)...]."""

    theta: np.ndarray
    cardinalities: tuple[int, ...]

    def design(self, paths: Paths) -> np.ndarray:
        """int64 [Q, 2 + G] indices into `theta` of the terms summed into each click's logit."""
        return _design(paths, self.cardinalities)

    def logits(self, paths: Paths) -> np.ndarray:
        """float64 [Q] logit of the trigger probability p_i of every click."""
        return self.theta[self.design(paths)].sum(axis=1)

    @property
    def first_click_logit(self) -> float:
        """b: the logit of a first click at the reference feature codes."""
        return float(self.theta[_BIAS])

    @property
    def cell_effects(self) -> np.ndarray:
        """float64 [POSITIONS - 1, gap buckets]: what a click at position 2, 3, ... after a gap
        in each bucket adds to the first click's logit."""
        return self.theta[_CELLS_AT:_FEATURES_AT].reshape(POSITIONS - 1, _GAPS)

    def feature_effects(self, feature: int) -> np.ndarray:
        """float64 [cardinality]: the terms of each code of feature `feature` (code 0 is 0)."""
        offset = _FEATURES_AT + sum(c - 1 for c in self.cardinalities[:feature])
        learned = self.theta[offset:offset + self.cardinalities[feature] - 1]
        return np.r_[0.0, learned]


def _design(paths: Paths, cardinalities: tuple[int, ...]) -> np.ndarray:
    q = len(paths)
    order, group, start = sort_journeys(paths.path, paths.time, paths.click_id)
    time = np.asarray(paths.time, dtype=np.float64)[order]
    position = np.arange(q) - start[group]  # 0-based, along `order`
    gap = np.searchsorted(GAP_EDGES, np.diff(time, prepend=0.0))
    cell = _CELLS_AT + (np.minimum(position, POSITIONS - 1) - 1) * _GAPS + gap
    columns = np.empty((q, 2 + len(cardinalities)), dtype=np.int64)
    columns[:, 0] = _BIAS
    columns[order, 1] = np.where(position == 0, _REFERENCE, cell)
    offset = _FEATURES_AT
    for g, card in enumerate(cardinalities):
        code = paths.features[:, g]
        columns[:, 2 + g] = np.where(code == 0, _REFERENCE, offset + code - 1)
        offset += card - 1
    return columns


def fit(converted: Paths, other: Paths, cardinalities: tuple[int, ...] = (), *,
        l2: float, max_iter: int = 200) -> NoisyOrModel:
    """Fit the noisy-OR model on converting paths and non-converting paths.

    Args:
        converted: the journeys of conversions (path = conversion number).
        other: click paths that did not convert (their own path numbering).
        cardinalities: number of codes of each of the G feature columns.
        l2: precision of the Gaussian prior on every parameter but the bias (the attribution
            config's `dda_l2`, 1.0 by default).
    """
    import torch

    lengths = np.unique(np.r_[converted.lengths(), other.lengths()])
    if len(lengths) == 1:
        log.warning("every click path has %d click(s): the data cannot tell positions apart, "
                    "so the dda credit of later clicks follows the prior (toward the linear "
                    "rule)", lengths[0])
    terms = objective_terms(converted, other, cardinalities, l2=l2)
    dim = len(terms.prior)

    # torch's L-BFGS drives the numpy objective: its closure only needs the loss and gradient.
    # It moves the learned terms; theta[0] stays the fixed 0.
    learned = torch.zeros(dim - 1, dtype=torch.float64)
    optimizer = torch.optim.LBFGS([learned], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-7, tolerance_change=1e-10,
                                  line_search_fn="strong_wolfe")

    def closure():
        loss, grad = objective(np.r_[0.0, learned.numpy()], terms)
        learned.grad = torch.from_numpy(grad[1:])
        return torch.tensor(loss, dtype=torch.float64)

    if terms.n_paths:
        optimizer.step(closure)
    return NoisyOrModel(theta=np.r_[0.0, learned.numpy()], cardinalities=tuple(cardinalities))


@dataclass(frozen=True)
class ObjectiveTerms:
    """The data of the fit, aggregated.

    rows: int64 [U, K] distinct design rows (indices into theta of a click's logit terms).
    conv_row: int64 [Qc] design row of every click of a converting path; conv_path: int64 [Qc]
        its path, 0..n_conv-1.
    other_count: float64 [U] clicks of non-converting paths per design row.
    n_paths: converting plus non-converting paths (the loss is a mean over paths).
    prior: float64 [D] Gaussian prior precision of each parameter.
    """

    rows: np.ndarray
    conv_row: np.ndarray
    conv_path: np.ndarray
    n_conv: int
    other_count: np.ndarray
    n_paths: int
    prior: np.ndarray


def objective_terms(converted: Paths, other: Paths, cardinalities: tuple[int, ...] = (), *,
                    l2: float) -> ObjectiveTerms:
    """The fit's data, aggregated (arguments as in `fit`)."""
    if converted.features.shape[1] != len(cardinalities) or \
            other.features.shape[1] != len(cardinalities):
        raise ValueError("one cardinality per feature column is needed")
    # Clicks share few distinct logit terms: compute them once per distinct design row. Paths
    # that did not convert add sum_i softplus(z_i) to the loss whatever their grouping, so they
    # reduce to a count per design row; only converting paths keep their clicks.
    design = np.concatenate([_design(converted, cardinalities), _design(other, cardinalities)])
    row, _ = key_codes([design[:, k] for k in range(design.shape[1])],
                       [np.zeros(0, np.int64)] * design.shape[1])
    rows = np.zeros((int(row.max()) + 1 if len(row) else 0, design.shape[1]), dtype=np.int64)
    rows[row] = design
    n_conv_clicks = len(converted)
    _, conv_path = np.unique(converted.path, return_inverse=True)
    n_other = len(pd.unique(other.path))
    other_count = np.bincount(row[n_conv_clicks:], minlength=len(rows)).astype(np.float64)
    n_conv = int(conv_path.max()) + 1 if len(conv_path) else 0
    dim = _FEATURES_AT + int(sum(cardinalities)) - len(cardinalities)
    prior = np.full(dim, l2)
    prior[_BIAS] = 0.0
    return ObjectiveTerms(rows=rows, conv_row=row[:n_conv_clicks],
                          conv_path=conv_path.astype(np.int64), n_conv=n_conv,
                          other_count=other_count, n_paths=n_conv + n_other, prior=prior)


def objective(theta: np.ndarray, terms: ObjectiveTerms) -> tuple[float, np.ndarray]:
    """Negative log posterior per path and its gradient float64 [D]."""
    scale = 1.0 / max(terms.n_paths, 1)
    z = theta[terms.rows].sum(axis=1)
    softplus = np.logaddexp(0.0, z)
    sigmoid = np.exp(z - softplus)
    # hazard = -log P(no click of the path triggers); its complement is the conversion.
    hazard = np.maximum(np.bincount(terms.conv_path, weights=softplus[terms.conv_row],
                                    minlength=terms.n_conv), 1e-12)
    nll = -np.log(-np.expm1(-hazard)).sum() + terms.other_count @ softplus
    d_hazard = -1.0 / np.expm1(hazard)
    d_row = (np.bincount(terms.conv_row, weights=d_hazard[terms.conv_path],
                         minlength=len(z)) + terms.other_count) * sigmoid
    grad = np.bincount(terms.rows.ravel(), weights=np.repeat(d_row, terms.rows.shape[1]),
                       minlength=len(theta))
    prior = terms.prior
    return scale * (nll + 0.5 * float(prior @ theta ** 2)), scale * (grad + prior * theta)


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
    log_p = -np.logaddexp(0.0, -logit)
    p = np.exp(log_p)
    nodes, node_weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    nodes, node_weights = (nodes + 1) / 2, node_weights / 2
    integral = np.zeros(q)
    for t, w in zip(nodes, node_weights):
        own = np.log1p(-t * p)
        # prod over the other clicks = exp(sum over the journey - own term); t < 1 keeps it > 0.
        integral += w * np.exp(np.bincount(group, weights=own, minlength=n_groups)[group] - own)
    log_phi = log_p + np.log(integral)
    peak = np.full(n_groups, -np.inf)
    np.maximum.at(peak, group, log_phi)
    phi = np.exp(log_phi - peak[group])
    return phi / np.bincount(group, weights=phi, minlength=n_groups)[group]


def dda_credit(converted: Paths, other: Paths, cardinalities: tuple[int, ...] = (), *,
               l2: float) -> tuple[np.ndarray, NoisyOrModel]:
    """Fit on all paths and credit the converting ones: float64 [P] weights and the model."""
    model = fit(converted, other, cardinalities, l2=l2)
    return shapley_shares(converted.path, model.logits(converted)), model
