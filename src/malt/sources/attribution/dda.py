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

from malt.sources.attribution.journeys import key_codes
from malt.sources.attribution.rules import sort_journeys

POSITIONS = 5
"""Positions with their own terms; later clicks share the last one."""
GAP_EDGES = (60.0, 3600.0, 86400.0)
"""Gap buckets (seconds) of a later click: <= 1 minute, <= 1 hour, <= 1 day, longer."""
QUADRATURE_NODES = 32

log = logging.getLogger(__name__)

GAPS = len(GAP_EDGES) + 1
REFERENCE, BIAS, CELLS_AT = 0, 1, 2
"""theta[0] is the fixed 0 a term without a learned value points at (the first click's cell,
a feature's first code); theta[1] is `b`; the cells follow, then the feature tables."""
FEATURES_AT = CELLS_AT + (POSITIONS - 1) * GAPS


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
        return float(self.theta[BIAS])

    @property
    def cell_effects(self) -> np.ndarray:
        """float64 [POSITIONS - 1, gap buckets]: what a click at position 2, 3, ... after a gap
        in each bucket adds to the first click's logit."""
        return self.theta[CELLS_AT:FEATURES_AT].reshape(POSITIONS - 1, GAPS)

    def feature_effects(self, feature: int) -> np.ndarray:
        """float64 [cardinality]: the terms of each code of feature `feature` (code 0 is 0)."""
        offset = feature_offsets(self.cardinalities)[feature]
        learned = self.theta[offset:offset + self.cardinalities[feature] - 1]
        return np.r_[0.0, learned]


def feature_offsets(cardinalities: tuple[int, ...]) -> list[int]:
    """Index into theta of code 1 of every feature (code c > 0 sits at offset + c - 1)."""
    return [FEATURES_AT + sum(c - 1 for c in cardinalities[:g]) for g in range(len(cardinalities))]


def parameter_count(cardinalities: tuple[int, ...]) -> int:
    """D: the length of theta (the fixed 0, b, the cells and the feature tables)."""
    return FEATURES_AT + int(sum(cardinalities)) - len(cardinalities)


def cell_term(position, gap_bucket):
    """Index into theta of the cell of a later click: `position` in 1..POSITIONS - 1 (already
    capped), `gap_bucket` in 0..len(GAP_EDGES). Plain arithmetic, so that numpy arrays and
    Spark columns both go through it."""
    return CELLS_AT + (position - 1) * GAPS + gap_bucket


def _design(paths: Paths, cardinalities: tuple[int, ...]) -> np.ndarray:
    q = len(paths)
    order, group, start = sort_journeys(paths.path, paths.time, paths.click_id)
    time = np.asarray(paths.time, dtype=np.float64)[order]
    position = np.arange(q) - start[group]  # 0-based, along `order`
    gap = np.searchsorted(GAP_EDGES, np.diff(time, prepend=0.0))
    columns = np.empty((q, 2 + len(cardinalities)), dtype=np.int64)
    columns[:, 0] = BIAS
    columns[order, 1] = np.where(position == 0, REFERENCE,
                                 cell_term(np.minimum(position, POSITIONS - 1), gap))
    columns[:, 2:] = feature_terms(paths.features, cardinalities)
    return columns


def feature_terms(codes: np.ndarray, cardinalities: tuple[int, ...]) -> np.ndarray:
    """int64 [Q, G] indices into theta of the feature codes [Q, G] (code 0: the fixed 0)."""
    offsets = np.asarray(feature_offsets(cardinalities), dtype=np.int64)
    return np.where(codes == 0, REFERENCE, offsets + codes - 1).astype(np.int64)


@dataclass(frozen=True)
class PathCounts:
    """Click paths reduced to the sufficient statistics of the fit, in any order: what an
    engine hands to `terms_from_counts` (the Spark engine builds them with aggregations).

    conv_design: int64 [L, K] design row (indices into theta, see `NoisyOrModel.design`) of
        every click of every converting path pattern, the clicks of a pattern contiguous and
        in path order (time, then click id).
    conv_pattern: int64 [L] pattern number (0..C-1) of each; conv_count: float64 [C]
        converting paths with that pattern.
    other_design: int64 [U, K] design rows of clicks of non-converting paths; other_count:
        float64 [U] how many such clicks each row stands for.
    n_other: non-converting paths; lengths: int64 distinct lengths of all paths.
    """

    conv_design: np.ndarray
    conv_pattern: np.ndarray
    conv_count: np.ndarray
    other_design: np.ndarray
    other_count: np.ndarray
    n_other: int
    lengths: np.ndarray


@dataclass(frozen=True)
class ObjectiveTerms:
    """The data of the fit, aggregated and in a canonical order (design rows sorted, patterns
    sorted by length, then by their rows), so that equal statistics give the same fit.

    rows: int64 [U, K] distinct design rows (indices into theta of a click's logit terms).
    conv_row: int64 [L] design row of every click of every distinct converting pattern (a path's
        sequence of design rows); conv_path: int64 [L] its pattern, 0..n_conv-1.
    conv_count: float64 [n_conv] converting paths with each pattern.
    other_count: float64 [U] clicks of non-converting paths per design row.
    n_paths: converting plus non-converting paths (the loss is a mean over paths).
    prior: float64 [D] Gaussian prior precision of each parameter.
    lengths: int64 distinct lengths of all paths.
    """

    rows: np.ndarray
    conv_row: np.ndarray
    conv_path: np.ndarray
    n_conv: int
    conv_count: np.ndarray
    other_count: np.ndarray
    n_paths: int
    prior: np.ndarray
    lengths: np.ndarray


def path_counts(converted: Paths, other: Paths, cardinalities: tuple[int, ...] = ()
                ) -> tuple[PathCounts, np.ndarray]:
    """The statistics of in-memory paths: every converting path is its own pattern.

    Returns the counts and the order (int64 [Qc]) in which their `conv_design` lists the clicks
    of `converted`."""
    if converted.features.shape[1] != len(cardinalities) or \
            other.features.shape[1] != len(cardinalities):
        raise ValueError("one cardinality per feature column is needed")
    order, group, _ = sort_journeys(converted.path, converted.time, converted.click_id)
    _, other_path = np.unique(other.path, return_inverse=True)
    lengths = np.unique(np.r_[np.bincount(group), np.bincount(other_path)]).astype(np.int64)
    counts = PathCounts(conv_design=_design(converted, cardinalities)[order],
                        conv_pattern=group.astype(np.int64),
                        conv_count=np.ones(int(group.max()) + 1 if len(group) else 0),
                        other_design=_design(other, cardinalities),
                        other_count=np.ones(len(other)),
                        n_other=int(other_path.max()) + 1 if len(other_path) else 0,
                        lengths=lengths[lengths > 0])
    return counts, order


def terms_from_counts(counts: PathCounts, cardinalities: tuple[int, ...] = (), *, l2: float
                      ) -> tuple[ObjectiveTerms, np.ndarray]:
    """Aggregate `counts` into canonical `ObjectiveTerms`; also the canonical pattern (int64
    [C]) of each input pattern."""
    width = 2 + len(cardinalities)
    design = np.concatenate([counts.conv_design.reshape(-1, width),
                             counts.other_design.reshape(-1, width)])
    # Hash-based codes of the distinct rows, then one sort of those few rows.
    code, _ = key_codes([design[:, k] for k in range(width)], [np.zeros(0, np.int64)] * width)
    first = np.unique(code, return_index=True)[1]
    rank = np.lexsort(design[first].T[::-1])
    row = np.empty(len(first), np.int64)
    row[rank] = np.arange(len(first))
    row = row[code]
    rows = np.zeros((len(first), width), np.int64)
    rows[row] = design
    n_conv_clicks = len(counts.conv_design)
    other_count = np.bincount(row[n_conv_clicks:], weights=counts.other_count,
                              minlength=len(rows)).astype(np.float64)
    conv_row, conv_path, pattern_of = _canonical_patterns(row[:n_conv_clicks],
                                                          counts.conv_pattern,
                                                          len(counts.conv_count))
    n_conv = int(pattern_of.max()) + 1 if len(pattern_of) else 0
    conv_count = np.bincount(pattern_of, weights=counts.conv_count, minlength=n_conv)
    prior = np.full(parameter_count(cardinalities), l2)
    prior[BIAS] = 0.0
    terms = ObjectiveTerms(rows=rows, conv_row=conv_row, conv_path=conv_path, n_conv=n_conv,
                           conv_count=conv_count, other_count=other_count,
                           n_paths=int(round(conv_count.sum())) + counts.n_other, prior=prior,
                           lengths=np.asarray(counts.lengths, np.int64))
    return terms, pattern_of


def _canonical_patterns(row: np.ndarray, pattern: np.ndarray, n_patterns: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct patterns (sequences of design rows), ordered by length, then by their rows.

    Args:
        row: int64 [L] design row of every click; pattern: int64 [L] its pattern (contiguous).
    Returns:
        conv_row [L'] and conv_path [L'] of the distinct patterns, and the distinct pattern of
        each input pattern [n_patterns].
    """
    size = np.bincount(pattern, minlength=n_patterns)
    start = np.cumsum(size) - size
    pattern_of = np.empty(n_patterns, np.int64)
    distinct_rows, distinct_path, base = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], 0
    # One np.unique per distinct length: paths have few distinct lengths.
    for length in np.unique(size):
        members = np.flatnonzero(size == length)
        sequences = row[start[members, None] + np.arange(length)]
        unique, inverse = np.unique(sequences, axis=0, return_inverse=True)
        pattern_of[members] = base + inverse.ravel()
        distinct_rows.append(unique.ravel())
        distinct_path.append(np.repeat(base + np.arange(len(unique)), length))
        base += len(unique)
    return np.concatenate(distinct_rows), np.concatenate(distinct_path), pattern_of


def objective_terms(converted: Paths, other: Paths, cardinalities: tuple[int, ...] = (), *,
                    l2: float) -> ObjectiveTerms:
    """The fit's data, aggregated (arguments as in `fit`)."""
    return terms_from_counts(path_counts(converted, other, cardinalities)[0], cardinalities,
                             l2=l2)[0]


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
    terms = objective_terms(converted, other, cardinalities, l2=l2)
    return fit_terms(terms, cardinalities, max_iter=max_iter)


def fit_terms(terms: ObjectiveTerms, cardinalities: tuple[int, ...] = (), *,
              max_iter: int = 200) -> NoisyOrModel:
    """The MAP estimate on aggregated statistics (the one fit both engines run)."""
    import torch

    if len(terms.lengths) == 1:
        log.warning("every click path has %d click(s): the data cannot tell positions apart, "
                    "so the dda credit of later clicks follows the prior (toward the linear "
                    "rule)", terms.lengths[0])
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


def objective(theta: np.ndarray, terms: ObjectiveTerms) -> tuple[float, np.ndarray]:
    """Negative log posterior per path and its gradient float64 [D]."""
    scale = 1.0 / max(terms.n_paths, 1)
    z = theta[terms.rows].sum(axis=1)
    softplus = np.logaddexp(0.0, z)
    sigmoid = np.exp(z - softplus)
    # hazard = -log P(no click of the path triggers); its complement is the conversion.
    hazard = np.maximum(np.bincount(terms.conv_path, weights=softplus[terms.conv_row],
                                    minlength=terms.n_conv), 1e-12)
    nll = -terms.conv_count @ np.log(-np.expm1(-hazard)) + terms.other_count @ softplus
    d_hazard = -terms.conv_count / np.expm1(hazard)
    d_row = (np.bincount(terms.conv_row, weights=d_hazard[terms.conv_path],
                         minlength=len(z)) + terms.other_count) * sigmoid
    grad = np.bincount(terms.rows.ravel(), weights=np.repeat(d_row, terms.rows.shape[1]),
                       minlength=len(theta))
    prior = terms.prior
    return scale * (nll + 0.5 * float(prior @ theta ** 2)), scale * (grad + prior * theta)


def pattern_shares(terms: ObjectiveTerms, model: NoisyOrModel) -> np.ndarray:
    """float64 [L] dda weight of every click of every distinct converting pattern (a click's
    weight depends only on its path's pattern and its place in it)."""
    return shapley_shares(terms.conv_path, model.theta[terms.rows[terms.conv_row]].sum(axis=1))


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
    counts, order = path_counts(converted, other, cardinalities)
    terms, pattern_of = terms_from_counts(counts, cardinalities, l2=l2)
    model = fit_terms(terms, cardinalities)
    shares = pattern_shares(terms, model)
    pattern_start = np.searchsorted(terms.conv_path, np.arange(terms.n_conv))
    path = counts.conv_pattern
    rank = np.arange(len(path)) - np.searchsorted(path, path)
    weights = np.empty(len(order))
    weights[order] = shares[pattern_start[pattern_of[path]] + rank]
    return weights, model
