"""Paired bootstrap over users: the difference of two models' AUC, GAUC and logloss with its
interval and p-value, optionally pooled over training seeds.

Rows of one user are correlated and GAUC is a mean over users, so the unit of resampling is the
user (a cluster bootstrap): a replicate draws U users with replacement from the U users of the
rows and keeps all rows of each drawn user, once per draw. Two models scored on the same rows
are compared on the same replicates (paired), which cancels the difficulty of the rows and gives
much narrower intervals than two separate intervals would.

Nothing loops over users or rows per replicate. Each metric is written through per-user sums
computed once, so that a replicate, given its vector of user draw counts n [U], costs a few dot
products:

* GAUC = n·(clicks · AUC_u) / n·(clicks of counted users): exact.
* logloss = n·(loss summed per user) / n·(rows per user): exact.
* AUC = wins / (positives · negatives), where the wins of a replicate are the quadratic form
  nᵀ K n over the user-pair win matrix K (K_uv: pairs of a positive of u above a negative of v).
  On up to `EXACT_AUC_CELLS` rows × replicates it is computed exactly, as the AUC of the rows
  weighted by their user's draw count (one sort per model, cumulative sums per replicate).
  Above, K is replaced off its diagonal by the rank-one matrix of its row sums R and column
  sums C, R Cᵀ / W (W = 1ᵀK1, the wins of the day): nᵀ K n ≈ (n·R)(n·C) / W +
  Σ_u (n_u − 1)² (K_uu − R_u C_u / W). The two agree for every n that differs from 1 in one
  user, and the error elsewhere shrinks with the number of users; there the day has hundreds
  of thousands of them (MAC's test days). `tests/test_bootstrap.py` pins both forms against
  a recomputation on resampled rows.

Across seeds, seed s of one model is paired with seed s of the other; each replicate also draws
the seeds with replacement and averages the per-seed differences, so the interval covers both
the test rows and the training randomness. With one seed it covers the test rows only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from malt.metrics import LOGLOSS_EPS, gauc

METRICS = ("auc", "gauc", "logloss")
HIGHER_IS_BETTER = {"auc": True, "gauc": True, "logloss": False}
_CHUNK_CELLS = 16_000_000
"""Draw counts or row weights held at once (replicates × users or rows): 128 MB of float64."""
EXACT_AUC_CELLS = 50_000_000
"""Rows × replicates up to which the replicates' AUC is exact (about a minute per model at the
limit on one core); above it, the first- and own-user second-order terms."""


@dataclass(frozen=True)
class PairedDelta:
    """Metric of A minus metric of B on the same rows, with its bootstrap interval.

    `estimate` is the mean over seeds of the difference on the rows themselves; `low` and `high`
    are the percentile interval at `level`; `p_value` is two-sided (no difference as the null).
    """

    metric: str
    estimate: float
    low: float
    high: float
    p_value: float
    level: float
    resamples: int
    users: int
    seeds: int

    @property
    def excludes_zero(self) -> bool:
        """The interval lies on one side of 0."""
        return self.low > 0 or self.high < 0

    @property
    def a_better(self) -> bool | None:
        """True when A is better beyond the interval, False when B is, None when undecided
        or when neither side is better by its sign (PCOC, best at 1)."""
        if not self.excludes_zero or self.metric not in HIGHER_IS_BETTER:
            return None
        return (self.estimate > 0) == HIGHER_IS_BETTER[self.metric]

    def points(self, scale: float = 100.0) -> str:
        """'+0.52 [+0.31, +0.74]' in points (× `scale`), the interval's level implied."""
        return (f"{scale * self.estimate:+.2f} [{scale * self.low:+.2f}, "
                f"{scale * self.high:+.2f}]")


def _user_index(user: np.ndarray) -> tuple[np.ndarray, int]:
    ids, index = np.unique(np.asarray(user), return_inverse=True)
    return index.reshape(-1), len(ids)


@dataclass(frozen=True)
class _Shared:
    """Per-user sums that depend on the labels only: [U] each."""

    index: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    rows: np.ndarray
    counted_clicks: np.ndarray
    """Rows of the users with both classes (the GAUC denominator), 0 for the others."""

    @classmethod
    def of(cls, labels: np.ndarray, user: np.ndarray) -> _Shared:
        index, users = _user_index(user)
        positives = np.bincount(index, labels, minlength=users)
        rows = np.bincount(index, minlength=users).astype(np.float64)
        negatives = rows - positives
        counted = np.where((positives > 0) & (negatives > 0), rows, 0.0)
        return cls(index, positives, negatives, rows, counted)


def _auc_terms(scores: np.ndarray, labels: np.ndarray, shared: _Shared,
               user_auc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user win sums of one score vector: K's row sums, column sums and what its diagonal
    adds to their rank-one product, [U] each (see the module docstring).

    K_uv counts the pairs (positive row of u, negative row of v) ranked right, ties ½. A row sum
    is what u's positives win against every negative; a column sum what every positive wins
    against u's negatives; the diagonal what u's positives win against u's own negatives
    (`user_auc` [U], NaN for a user with one class, times its pairs).
    """
    users = len(shared.rows)
    order = np.argsort(scores, kind="stable")
    s, y, u = scores[order], labels[order], shared.index[order]
    new = np.r_[True, s[1:] != s[:-1]]
    starts, group = np.flatnonzero(new), np.cumsum(new) - 1
    pos_g = np.add.reduceat(y, starts)
    neg_g = np.add.reduceat(1.0 - y, starts)
    neg_below = (np.cumsum(neg_g) - 0.5 * neg_g)[group]
    pos_above = (pos_g.sum() - np.cumsum(pos_g) + 0.5 * pos_g)[group]
    row_sums = np.bincount(u, np.where(y > 0, neg_below, 0.0), minlength=users)
    column_sums = np.bincount(u, np.where(y > 0, 0.0, pos_above), minlength=users)
    diagonal = np.nan_to_num(user_auc) * shared.positives * shared.negatives
    wins = row_sums.sum()
    rank_one = row_sums * column_sums / wins if wins > 0 else 0.0
    return row_sums, column_sums, diagonal - rank_one


@dataclass(frozen=True)
class _SortedRows:
    """One score vector's rows in ascending score order, for exact weighted AUCs: the user of
    every row, and for every positive row the first and last sorted row of its tie group."""

    user: np.ndarray
    negative: np.ndarray
    positive_rows: np.ndarray
    tie_first: np.ndarray
    tie_last: np.ndarray

    @classmethod
    def of(cls, scores: np.ndarray, labels: np.ndarray, shared: _Shared) -> _SortedRows:
        order = np.argsort(scores, kind="stable")
        s, positive = scores[order], labels[order] > 0
        new = np.r_[True, s[1:] != s[:-1]]
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], len(s)] - 1
        group = np.cumsum(new) - 1
        rows = np.flatnonzero(positive)
        return cls(shared.index[order], ~positive, rows, starts[group[rows]], ends[group[rows]])

    def auc(self, counts: np.ndarray) -> np.ndarray:
        """AUC of every replicate, each row weighted by its user's draw count: [R, U] -> [R].

        A positive row wins the negative weight below its tie group and half of the one in it.
        """
        weight = counts[:, self.user]
        negatives = np.cumsum(np.where(self.negative, weight, 0.0), axis=1)
        through_last = negatives[:, self.tie_last]
        before_first = np.where(self.tie_first > 0, negatives[:, self.tie_first - 1], 0.0)
        wins = 0.5 * (before_first + through_last)
        positive_weight = weight[:, self.positive_rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (positive_weight * wins).sum(1) / (positive_weight.sum(1) *
                                                      negatives[:, -1])


def _loss_sums(scores: np.ndarray, labels: np.ndarray, shared: _Shared) -> np.ndarray:
    p = np.clip(scores, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
    loss = -(labels * np.log(p) + (1.0 - labels) * np.log1p(-p))
    return np.bincount(shared.index, loss, minlength=len(shared.rows))


def _check(scores: Sequence[np.ndarray], labels: np.ndarray, user: np.ndarray,
           metrics: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 1 or ((y != 0) & (y != 1)).any():
        raise ValueError("labels must be a 1-D array of 0 and 1")
    if np.shape(user) != y.shape:
        raise ValueError(f"user must have shape {y.shape}, got {np.shape(user)}")
    vectors = [np.asarray(s, dtype=np.float64) for s in scores]
    for s in vectors:
        if s.shape != y.shape or not np.isfinite(s).all():
            raise ValueError(f"every score vector must be finite with shape {y.shape}")
    if "logloss" in metrics and any(((s < 0) | (s > 1)).any() for s in vectors):
        raise ValueError("logloss needs probabilities in [0, 1]")
    return vectors, y


class _PerUserSums:
    """The metrics of M score vectors on one day, as functions of the users' draw counts.

    Every per-user sum is one column of a matrix, so that a block of replicates is one matrix
    product with it; `where[(metric, model)]` names the column.
    """

    def __init__(self, vectors: list[np.ndarray], labels: np.ndarray, user: np.ndarray,
                 metrics: Sequence[str], exact_auc: bool) -> None:
        shared = _Shared.of(labels, user)
        self.users, self.models, self.metrics = len(shared.rows), len(vectors), tuple(metrics)
        columns = [shared.positives, shared.negatives, shared.rows, shared.counted_clicks]
        within, self.where, self.exact = [], {}, []
        for model, s in enumerate(vectors):
            needs_user_auc = "gauc" in metrics or ("auc" in metrics and not exact_auc)
            user_auc = gauc(s, labels, shared.index).user_auc if needs_user_auc else None
            if "auc" in metrics and exact_auc:
                self.exact.append(_SortedRows.of(s, labels, shared))
            elif "auc" in metrics:
                row_sums, column_sums, own = _auc_terms(s, labels, shared, user_auc)
                self.where["auc", model] = len(columns)
                columns += [row_sums, column_sums]
                within.append(own)
            if "gauc" in metrics:
                self.where["gauc", model] = len(columns)
                columns.append(np.nan_to_num(user_auc) * shared.counted_clicks)
            if "logloss" in metrics:
                self.where["logloss", model] = len(columns)
                columns.append(_loss_sums(s, labels, shared))
        self.per_user = np.stack(columns, 1)
        self.diagonal = np.stack(within, 1) if within else np.zeros((self.users, 0))

    def _columns(self, x: np.ndarray, metric: str, offset: int = 0) -> np.ndarray:
        return x[:, [self.where[metric, model] + offset for model in range(self.models)]]

    def metrics_at(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric of each score vector with the users drawn `counts` [R, U] times:
        metric -> [R, M], NaN where a replicate leaves the metric undefined."""
        x = counts @ self.per_user
        pos, neg, rows, counted = (x[:, i:i + 1] for i in range(4))
        out = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for metric in self.metrics:
                if metric == "auc" and self.exact:
                    out[metric] = np.stack([rows.auc(counts) for rows in self.exact], 1)
                elif metric == "auc":
                    wins = self._columns(self.per_user, metric).sum(0)
                    own = (counts - 1.0) ** 2 @ self.diagonal
                    out[metric] = (self._columns(x, metric) * self._columns(x, metric, 1) /
                                   wins + own) / (pos * neg)
                else:
                    out[metric] = self._columns(x, metric) / (counted if metric == "gauc"
                                                              else rows)
        return out


@dataclass(frozen=True)
class Replicates:
    """Metric -> [B, M] on the bootstrap replicates, and metric -> [M] on the day itself."""

    values: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]
    users: int


def user_replicates(scores: Sequence[np.ndarray], labels: np.ndarray, user: np.ndarray, *,
                    metrics: Sequence[str] = METRICS, resamples: int,
                    seed: int = 0) -> Replicates:
    """Each metric of each score vector on the same `resamples` user-bootstrap replicates.

    Args:
        scores: M score vectors [N] on the same rows (probabilities for logloss).
        labels: [N] 0/1.
        user: [N] user ids.
        metrics: any of "auc", "gauc", "logloss".
        resamples: replicates B.
        seed: seed of the draws; the same seed gives the same replicates.
    Returns:
        `Replicates`: float64 [B, M] per metric (NaN where a replicate leaves the metric
        undefined) and the metrics of the day itself, [M] per metric.
    """
    vectors, y = _check(scores, labels, user, metrics)
    sums = _PerUserSums(vectors, y, user, metrics,
                        exact_auc=len(y) * resamples <= EXACT_AUC_CELLS)
    users = sums.users
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, _CHUNK_CELLS // max(users, len(y) if sums.exact else 1, 1)))
    blocks = []
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        draws = rng.integers(0, users, (size, users)) + users * np.arange(size)[:, None]
        counts = np.bincount(draws.ravel(), minlength=size * users).reshape(size, users)
        blocks.append(sums.metrics_at(counts.astype(np.float64)))
    observed = sums.metrics_at(np.ones((1, users)))
    return Replicates({m: np.concatenate([b[m] for b in blocks]) for m in metrics},
                      {m: v[0] for m, v in observed.items()}, users)


def paired_bootstrap(a: Sequence[np.ndarray], b: Sequence[np.ndarray], labels: np.ndarray,
                     user: np.ndarray, *, metrics: Sequence[str] = METRICS,
                     resamples: int, level: float = 0.95,
                     seed: int = 0) -> dict[str, PairedDelta]:
    """Metric of A minus metric of B, paired over users and over seeds.

    Args:
        a: one score vector [N] per training seed of A (probabilities for logloss).
        b: B's score vectors, seed s of B paired with seed s of A (same count as `a`).
        labels: [N] 0/1 of the rows both scored.
        user: [N] user ids.
        metrics: any of "auc", "gauc", "logloss".
        resamples: bootstrap replicates.
        level: coverage of the interval, in (0, 1).
        seed: seed of the draws.
    Returns:
        metric -> `PairedDelta`; NaN figures where the metric is undefined on the rows.
    """
    if not a or len(a) != len(b):
        raise ValueError(f"pair one score vector of B with each of A: got {len(a)} and {len(b)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    seeds = len(a)
    replicates = user_replicates([*a, *b], labels, user, metrics=metrics, resamples=resamples,
                                 seed=seed)
    # The seeds a replicate averages over, drawn with replacement (all of them for one seed).
    drawn = np.random.default_rng([seed, 1]).integers(0, seeds, (resamples, seeds))
    out = {}
    for metric in metrics:
        values, observed = replicates.values[metric], replicates.observed[metric]
        per_seed = values[:, :seeds] - values[:, seeds:]
        deltas = np.take_along_axis(per_seed, drawn, 1).mean(1)
        estimate = float(np.mean(observed[:seeds] - observed[seeds:]))
        out[metric] = _summary(metric, estimate, deltas, level, users=replicates.users,
                               seeds=seeds)
    return out


def _summary(metric: str, estimate: float, deltas: np.ndarray, level: float, *, users: int,
             seeds: int) -> PairedDelta:
    """The percentile interval and two-sided p-value of the replicates' differences (the
    replicates where the metric is undefined left out)."""
    finite = deltas[np.isfinite(deltas)]
    if not len(finite) or not math.isfinite(estimate):
        return PairedDelta(metric, math.nan, math.nan, math.nan, math.nan, level, len(deltas),
                           users, seeds)
    tail = (1 - level) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    # Counting the observed difference among the replicates keeps p above 0 (resolution 1/B).
    below, above = np.count_nonzero(finite <= 0) + 1, np.count_nonzero(finite >= 0) + 1
    p_value = min(1.0, 2 * min(below, above) / (len(finite) + 1))
    p_value = float(p_value)
    return PairedDelta(metric, estimate, float(low), float(high), p_value, level, len(finite),
                       users, seeds)


TARGET_METRICS = ("auc", "gauc", "logloss", "pcoc")
"""What `paired_target_bootstrap` measures; PCOC's best is 1, so no side of its Δ is better."""


class _TargetSums:
    """The metrics of M score vectors against a target in [0, 1] (0/1 labels or a true
    probability), as functions of the users' draw counts.

    A target p counts a row as a positive of mass p and a negative of mass 1 − p; an AUC is the
    expected number of pairs ranked right over the expected number of (positive, negative)
    pairs of distinct rows, labels drawn independently from the target (so a row never pairs
    with itself). On 0/1 labels every metric is the usual one (`malt.metrics`).
    """

    def __init__(self, vectors: list[np.ndarray], target: np.ndarray, user: np.ndarray) -> None:
        self.index, self.users = _user_index(user)
        self.target = target
        self.own = target * (1.0 - target)
        """Each row's pair with itself, [N]: left out of every AUC."""
        self.rows = np.bincount(self.index, minlength=self.users).astype(np.float64)
        self.target_sums = np.bincount(self.index, target, minlength=self.users)
        self.sorted = []
        user_auc, loss, score_sums = [], [], []
        for s in vectors:
            order = np.argsort(s, kind="stable")
            new = np.r_[True, s[order][1:] != s[order][:-1]]
            self.sorted.append((order, np.flatnonzero(new)))
            user_auc.append(self._user_auc(s))
            p = np.clip(s, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
            rows_loss = -(target * np.log(p) + (1.0 - target) * np.log1p(-p))
            loss.append(np.bincount(self.index, rows_loss, minlength=self.users))
            score_sums.append(np.bincount(self.index, s, minlength=self.users))
        self.user_auc = np.stack(user_auc, 1)
        self.loss = np.stack(loss, 1)
        self.score_sums = np.stack(score_sums, 1)

    def _user_auc(self, s: np.ndarray) -> np.ndarray:
        """Per-user AUC against the target, [U], NaN for a user without a pair."""
        doubled = gauc(np.r_[s, s], np.r_[np.ones_like(s), np.zeros_like(s)],
                       np.r_[self.index, self.index],
                       sample_weight=np.r_[self.target, 1.0 - self.target])
        users = doubled.user_ids  # ascending: the user index itself
        positive = np.bincount(self.index, self.target, minlength=self.users)[users]
        pairs = positive * (self.rows[users] - positive)
        own = np.bincount(self.index, self.own, minlength=self.users)[users]
        wins = np.nan_to_num(doubled.user_auc) * pairs
        out = np.full(self.users, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[users] = np.where(pairs - own > 0, (wins - 0.5 * own) / (pairs - own), np.nan)
        return out

    def auc(self, model: int, counts: np.ndarray) -> np.ndarray:
        """AUC of vector `model` on every replicate, rows weighted by their user's draw count:
        [R, U] -> [R]."""
        order, starts = self.sorted[model]
        weight = counts[:, self.index[order]]
        positive = np.add.reduceat(weight * self.target[order], starts, axis=1)
        negative = np.add.reduceat(weight * (1.0 - self.target[order]), starts, axis=1)
        wins = (positive * (np.cumsum(negative, 1) - 0.5 * negative)).sum(1)
        own = counts[:, self.index] @ self.own
        with np.errstate(invalid="ignore", divide="ignore"):
            return (wins - 0.5 * own) / (positive.sum(1) * negative.sum(1) - own)

    def metrics_at(self, counts: np.ndarray, metrics: Sequence[str]) -> dict[str, np.ndarray]:
        """metric -> [R, M] with the users drawn `counts` [R, U] times."""
        out = {}
        rows = counts @ self.rows
        with np.errstate(invalid="ignore", divide="ignore"):
            for metric in metrics:
                if metric == "auc":
                    out[metric] = np.stack([self.auc(m, counts)
                                            for m in range(len(self.sorted))], 1)
                elif metric == "gauc":
                    counted = np.where(np.isnan(self.user_auc), 0.0, self.rows[:, None])
                    out[metric] = (counts @ (np.nan_to_num(self.user_auc) * counted)) / \
                        (counts @ counted)
                elif metric == "logloss":
                    out[metric] = (counts @ self.loss) / rows[:, None]
                else:  # PCOC, undefined (NaN) without an expected conversion
                    expected = (counts @ self.target_sums)[:, None]
                    out[metric] = np.where(expected > 0, counts @ self.score_sums, np.nan) / \
                        np.where(expected > 0, expected, 1.0)
        return out


def target_metrics(scores: np.ndarray, target: np.ndarray, user: np.ndarray
                   ) -> dict[str, float]:
    """AUC, GAUC, logloss and PCOC against a target in [0, 1], as `paired_target_bootstrap`
    defines them.

    scores, target [N] in [0, 1] and user [N] -> metric -> value (NaN where undefined)."""
    sums = _TargetSums([np.asarray(scores, dtype=np.float64)],
                       np.asarray(target, dtype=np.float64), np.asarray(user))
    values = sums.metrics_at(np.ones((1, sums.users)), TARGET_METRICS)
    return {metric: float(v[0, 0]) for metric, v in values.items()}


def paired_target_bootstrap(a: Sequence[np.ndarray], b: Sequence[np.ndarray],
                            target: np.ndarray, user: np.ndarray, *,
                            metrics: Sequence[str] = TARGET_METRICS, resamples: int,
                            level: float = 0.95, seed: int = 0) -> dict[str, PairedDelta]:
    """`paired_bootstrap` against a target in [0, 1], with PCOC besides AUC, GAUC and logloss.

    The target is 0/1 labels, or a true probability (simulated data); PCOC is Σ score /
    Σ target.

    Against a probability p, a row is a positive of mass p and a negative of mass 1 − p: the
    logloss is the cross-entropy to p, PCOC the predicted over the expected conversions, and an
    AUC the expected pairs ranked right over the expected pairs of distinct rows (GAUC: per
    user, users of one row left out). On 0/1 labels each is `malt.metrics`' own. The replicates
    recompute every metric exactly: memory grows as replicates × rows (blocks of them).

    Args:
        a: score vectors [N] in [0, 1], one per training seed of A.
        b: B's, seed s paired with seed s of A.
        target: [N] in [0, 1].
        user: [N] user ids.
        metrics: any of "auc", "gauc", "logloss", "pcoc".
        resamples: bootstrap replicates.
        level: coverage of the interval, in (0, 1).
        seed: seed of the draws.
    Returns:
        metric -> `PairedDelta` of A − B (NaN where the metric is undefined).
    """
    unknown = [m for m in metrics if m not in TARGET_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(TARGET_METRICS)}")
    if not a or len(a) != len(b):
        raise ValueError(f"pair one score vector of B with each of A: got {len(a)} and {len(b)}")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"need 0 < level < 1 and resamples >= 1, got {level}, {resamples}")
    y = np.asarray(target, dtype=np.float64)
    if y.ndim != 1 or not np.isfinite(y).all() or ((y < 0) | (y > 1)).any():
        raise ValueError("target must be a 1-D array in [0, 1]")
    vectors = [np.asarray(s, dtype=np.float64) for s in (*a, *b)]
    if np.shape(user) != y.shape or any(s.shape != y.shape or not np.isfinite(s).all() or
                                        ((s < 0) | (s > 1)).any() for s in vectors):
        raise ValueError(f"user and every score vector need shape {y.shape}, scores in [0, 1]")
    sums = _TargetSums(vectors, y, np.asarray(user))
    seeds, users = len(a), sums.users
    rng = np.random.default_rng(seed)
    # A block holds a few [replicates, rows] arrays at once (the AUC's row weights).
    block = max(1, min(resamples, _CHUNK_CELLS // max(4 * len(y), 1)))
    blocks = []
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        draws = rng.integers(0, users, (size, users)) + users * np.arange(size)[:, None]
        counts = np.bincount(draws.ravel(), minlength=size * users).reshape(size, users)
        blocks.append(sums.metrics_at(counts.astype(np.float64), metrics))
    observed = sums.metrics_at(np.ones((1, users)), metrics)
    drawn = np.random.default_rng([seed, 1]).integers(0, seeds, (resamples, seeds))
    out = {}
    for metric in metrics:
        values = np.concatenate([b[metric] for b in blocks])
        per_seed = values[:, :seeds] - values[:, seeds:]
        deltas = np.take_along_axis(per_seed, drawn, 1).mean(1)
        estimate = float(np.mean(observed[metric][0, :seeds] - observed[metric][0, seeds:]))
        out[metric] = _summary(metric, estimate, deltas, level, users=users, seeds=seeds)
    return out
