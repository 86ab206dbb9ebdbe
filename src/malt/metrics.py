"""Evaluation metrics, vectorised: AUC, GAUC, logloss, calibration (PCOC, ECE and reliability
bins), RelaImpr, GAUC gain by path complexity.

Two AUC/GAUC flavours are offered and must not be confused:

* **binarised** (paper-comparable): labels are `weight > 0`, every row counts once. This is what
  the MAC paper's published numbers were computed with.
* **attribution-weighted** (the MAC paper's §3.3 wording): positives carry their attribution weight
  as importance, negatives weight 1; pass `attribution_sample_weight(weights)` as `sample_weight`.
  This is a different metric; its values are not comparable with the paper's tables.

AUC follows the Mann–Whitney form with ties counted ½ and sample weights multiplying pair counts,
which equals scikit-learn's `roc_auc_score(labels, scores, sample_weight=w)`. Nothing here loops in
Python per row or per user: one sort, tie groups, then segment sums.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LOGLOSS_EPS = 1e-7
# Group edges of linear/last positives per user: [1, 1.5), [1.5, 2), [2, 3), [3, 5), [5, inf).
# A ratio of 1 means every conversion of the day had a single clicked touchpoint.
DEFAULT_COMPLEXITY_EDGES = (1.0, 1.5, 2.0, 3.0, 5.0)
CALIBRATION_BINS = 20
"""Equal-count bins of the reliability diagram and the ECE: 20 bins of 5 % of the rows each."""
Score = float | None
"""A saved metric: NaN where it is undefined (an AUC of rows without a positive). JSON has no
NaN, so `metrics.json` holds null there; a null read back is NaN again (`_nan_for_null`)."""


# --- input checks ---------------------------------------------------------------------------------

def _scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return s


def _labels(labels: np.ndarray, n: int, soft: bool = False) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    bad = ((y < 0) | (y > 1) | np.isnan(y)) if soft else ((y != 0) & (y != 1))
    if bad.any():
        raise ValueError("labels must be in [0, 1]" if soft else "labels must be 0 or 1")
    return y


def _probs(probs: np.ndarray) -> np.ndarray:
    p = _scores(probs, "probs")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probs must be in [0, 1]")
    return p


def _weights(sample_weight: np.ndarray | None, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError("sample_weight must be finite and >= 0")
    return w


def _class_mass(y: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative mass of each row, [N] each."""
    if w is None:
        return y, 1.0 - y
    return y * w, (1.0 - y) * w


# --- AUC ------------------------------------------------------------------------------------------

def attribution_sample_weight(weights: np.ndarray) -> np.ndarray:
    """Sample weights of the attribution-weighted metric (MAC paper §3.3).

    Args:
        weights: raw attribution weights of one view [N] (0 = negative).
    Returns:
        float64 [N]: the attribution weight on positive rows, 1 on negative rows. Use it with the
        labels `weights > 0`.
    """
    w = np.asarray(weights, dtype=np.float64)
    return np.where(w > 0, w, 1.0)


def auc(scores: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Area under the ROC curve, ties counted ½, optionally weighted.

    Args:
        scores: [N] any real scores (probabilities or logits).
        labels: [N] 0/1.
        sample_weight: [N] >= 0 or None; a pair (i, j) counts w_i · w_j.
    Returns:
        The AUC, or NaN when the positive or the negative mass is zero (AUC undefined; this
        includes empty input).
    """
    s = _scores(scores)
    y = _labels(labels, len(s))
    pos, neg = _class_mass(y, _weights(sample_weight, len(s)))
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    s = s[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos_g = np.add.reduceat(pos[order], starts)
    neg_g = np.add.reduceat(neg[order], starts)
    neg_below = np.cumsum(neg_g) - neg_g
    return float(np.dot(pos_g, neg_below + 0.5 * neg_g) / (total_pos * total_neg))


# --- GAUC -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GAUC:
    """Click-weighted mean of per-user AUC over the users that have both classes.

    Attributes:
        value: the GAUC; NaN when no user has both classes.
        users: number of users counted (positive and negative mass both > 0).
        clicks: rows of the counted users (the GAUC denominator).
        user_ids: [U] every distinct user id, ascending.
        user_auc: [U] per-user AUC; NaN for users with one class only.
        user_clicks: [U] int64 rows per user.
    """

    value: float
    users: int
    clicks: int
    user_ids: np.ndarray
    user_auc: np.ndarray
    user_clicks: np.ndarray


def gauc(scores: np.ndarray, labels: np.ndarray, user: np.ndarray,
         sample_weight: np.ndarray | None = None) -> GAUC:
    """Group AUC by user (MAC paper Eq. 2): Σ_u clicks_u · AUC_u / Σ_u clicks_u.

    Users whose rows are all one class are skipped; each counted user weighs its number of rows
    (clicks), also when `sample_weight` is given (weights change AUC_u only).

    Args:
        scores: [N] real scores.
        labels: [N] 0/1.
        user: [N] integer user ids (any values; need not be dense).
        sample_weight: [N] >= 0 or None.
    Returns:
        `GAUC` with the value, the counts and the per-user arrays.
    """
    s = _scores(scores)
    n = len(s)
    y = _labels(labels, n)
    u = np.asarray(user)
    if u.shape != (n,):
        raise ValueError(f"user must have shape ({n},), got {u.shape}")
    pos, neg = _class_mass(y, _weights(sample_weight, n))

    if n == 0:
        return GAUC(float("nan"), 0, 0, u.copy(), np.zeros(0), np.zeros(0, dtype=np.int64))

    # Stable sort by score, then stable sort by user: the same order as np.lexsort((s, u)), and
    # faster on millions of rows.
    order = np.argsort(s, kind="stable")
    order = order[np.argsort(u[order], kind="stable")]
    s, u, pos, neg = s[order], u[order], pos[order], neg[order]
    new_user = np.r_[True, u[1:] != u[:-1]]
    user_starts = np.flatnonzero(new_user)
    group_starts = np.flatnonzero(new_user | np.r_[True, s[1:] != s[:-1]])
    user_ids = u[user_starts]
    user_clicks = np.diff(np.r_[user_starts, n]).astype(np.int64)
    group_user = np.cumsum(new_user)[group_starts] - 1
    pos_g = np.add.reduceat(pos, group_starts)
    neg_g = np.add.reduceat(neg, group_starts)
    n_users = len(user_ids)
    pos_u = np.bincount(group_user, pos_g, minlength=n_users)
    neg_u = np.bincount(group_user, neg_g, minlength=n_users)
    # Negative mass below each tie group within its user: a global running sum minus the sum
    # reached at the user's first group. Integer negative weights (unweighted, attribution-
    # weighted) keep this exact; fractional ones lose about ε · (total negative mass).
    neg_before = np.cumsum(neg_g) - neg_g
    first_group = np.flatnonzero(np.r_[True, group_user[1:] != group_user[:-1]])
    neg_before -= neg_before[first_group][group_user]
    wins = np.bincount(group_user, pos_g * (neg_before + 0.5 * neg_g), minlength=n_users)

    valid = (pos_u > 0) & (neg_u > 0)
    user_auc = np.full(n_users, np.nan)
    user_auc[valid] = wins[valid] / (pos_u[valid] * neg_u[valid])
    counted_clicks = int(user_clicks[valid].sum())
    value = (float(np.dot(user_clicks[valid], user_auc[valid]) / counted_clicks)
             if counted_clicks else float("nan"))
    return GAUC(value, int(valid.sum()), counted_clicks, user_ids, user_auc, user_clicks)


# --- logloss --------------------------------------------------------------------------------------

def logloss(probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None,
            eps: float = LOGLOSS_EPS) -> float:
    """Mean binary cross-entropy of probabilities clipped to [eps, 1 − eps].

    Args:
        probs: [N] predicted P(y = 1).
        labels: [N] targets in [0, 1] (0/1 for the usual logloss).
        sample_weight: [N] >= 0 or None; the mean is weighted.
    Returns:
        The (weighted) mean loss; NaN for empty input or zero total weight.
    """
    p = np.clip(_scores(probs, "probs"), eps, 1.0 - eps)
    y = _labels(labels, len(p), soft=True)
    per_row = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return _mean(per_row, _weights(sample_weight, len(p)))


def _mean(values: np.ndarray, w: np.ndarray | None) -> float:
    total = len(values) if w is None else w.sum()
    if total == 0:
        return float("nan")
    return float((values.sum() if w is None else np.dot(values, w)) / total)


# --- calibration ----------------------------------------------------------------------------------

def pcoc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Predicted over observed conversions: Σ probs / Σ labels.

    1 is calibrated on average; above 1 the model over-predicts (a bidder would overbid), below
    1 it under-predicts. It says nothing about the ranking or about calibration within slices.

    Args:
        probs: [N] predicted P(y = 1), in [0, 1].
        labels: [N] 0/1.
    Returns:
        The ratio; NaN when there is no positive (observed count 0, so the ratio is undefined;
        this includes empty input).
    """
    p = _probs(probs)
    observed = _labels(labels, len(p)).sum()
    if observed == 0:
        return float("nan")
    return float(p.sum() / observed)


@dataclass(frozen=True, eq=False)
class ReliabilityBins:
    """Rows sorted by prediction and cut into equal-count bins, lowest predictions first.

    Attributes:
        mean_predicted: [K] mean prediction of each bin.
        observed_rate: [K] share of positives in each bin.
        rows: [K] int64 rows per bin (they differ by at most one).
    """

    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    rows: np.ndarray

    @property
    def ece(self) -> float:
        """Σ_b (n_b / N) · |mean_predicted_b − observed_rate_b|; NaN without rows."""
        total = self.rows.sum()
        if total == 0:
            return float("nan")
        gap = np.abs(self.mean_predicted - self.observed_rate)
        return float(np.dot(self.rows, gap) / total)


def reliability_bins(probs: np.ndarray, labels: np.ndarray,
                     bins: int = CALIBRATION_BINS) -> ReliabilityBins:
    """The reliability curve on equal-count (equal-mass) bins.

    Conversion-rate predictions crowd near 0, so equal-width bins on [0, 1] would put almost
    every row in the first bin; equal-count bins give every bin the same share of rows. Bin b
    holds the rows at sorted positions [⌊b·N/K⌋, ⌊(b+1)·N/K⌋) with K = min(bins, N); rows tied on
    one prediction may fall on either side of a bin edge (the order among ties is the input
    order), which keeps every bin the same size.

    Args:
        probs: [N] predicted P(y = 1), in [0, 1].
        labels: [N] 0/1.
        bins: the number of bins wanted (>= 1); fewer when there are fewer rows.
    Returns:
        `ReliabilityBins` with K bins (none for empty input).
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    p = _probs(probs)
    y = _labels(labels, len(p))
    n = len(p)
    k = min(int(bins), n)
    if k == 0:
        return ReliabilityBins(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    order = np.argsort(p, kind="stable")
    edges = np.arange(k + 1, dtype=np.int64) * n // k
    rows = np.diff(edges)
    starts = edges[:-1]
    sum_p = np.add.reduceat(p[order], starts)
    sum_y = np.add.reduceat(y[order], starts)
    return ReliabilityBins(sum_p / rows, sum_y / rows, rows)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               bins: int = CALIBRATION_BINS) -> float:
    """ECE = Σ_b (n_b / N) · |mean p_b − mean y_b| over the equal-count bins of
    `reliability_bins` (so it is in [0, 1]; 0 when every bin's mean prediction is its observed
    rate).

    Args:
        probs: [N] predicted P(y = 1), in [0, 1].
        labels: [N] 0/1.
        bins: number of equal-count bins (fewer when there are fewer rows).
    Returns:
        The ECE; NaN for empty input.
    """
    return reliability_bins(probs, labels, bins).ece


# --- relative improvement -------------------------------------------------------------------------

def rela_impr(auc_model: float, auc_base: float) -> float:
    """RelaImpr (KAML paper Eq. 14): (AUC_model − 0.5) / (AUC_base − 0.5) − 1.

    Returns a fraction (0.0124 = 1.24 %); NaN when the baseline AUC is 0.5 (no lift measurable).
    """
    if auc_base == 0.5:
        return float("nan")
    return (auc_model - 0.5) / (auc_base - 0.5) - 1.0


def rela_impr_best(auc_model: float, baselines: Mapping[str, float]) -> tuple[float, str]:
    """RelaImpr against the best (highest-AUC) of `baselines` {name: AUC}.

    Returns:
        (RelaImpr as a fraction, name of the baseline used). The first name wins a tie.
    """
    if not baselines:
        raise ValueError("no baseline AUC given")
    best = max(baselines, key=lambda name: baselines[name])
    return rela_impr(auc_model, baselines[best]), best


# --- GAUC gain by conversion-path complexity ------------------------------------------------------

@dataclass(frozen=True)
class ComplexityGroup:
    """One group of users by path complexity [lo, hi) and the GAUC of both runs on it."""

    lo: float
    hi: float
    users: int
    clicks: int
    gauc_model: float
    gauc_baseline: float

    @property
    def gain(self) -> float:
        """GAUC of the model minus GAUC of the baseline (absolute; × 100 for points)."""
        return self.gauc_model - self.gauc_baseline


@dataclass(frozen=True)
class ComplexityBreakdown:
    """GAUC gain per path-complexity group.

    Attributes:
        groups: one entry per bin of the edges, in ascending order.
        excluded_users: users counted by both GAUCs but in no group: no last-click positive that
            day (complexity undefined) or a ratio below the first edge.
        excluded_clicks: their rows.
    """

    groups: tuple[ComplexityGroup, ...]
    excluded_users: int
    excluded_clicks: int


def path_complexity(user_ids: np.ndarray, user: np.ndarray, linear: np.ndarray,
                    last: np.ndarray) -> np.ndarray:
    """Per-user conversion-path complexity (MAC paper §6.2.2, Fig. 5).

    complexity_u = #(linear positives of u) / #(last-click positives of u) over the rows given
    (one evaluated day). It is NaN for users without a last-click positive: no conversion path
    ends within the rows, so the ratio is undefined.

    Args:
        user_ids: [U] ascending distinct user ids (e.g. `GAUC.user_ids`); every id in `user`
            must be among them.
        user: [N] user id per row.
        linear: [N] linear-attribution weights or labels (> 0 is positive).
        last: [N] last-click weights or labels (> 0 is positive).
    Returns:
        float64 [U] complexity per user of `user_ids`.
    """
    ids = np.asarray(user_ids)
    u = np.asarray(user)
    index = np.searchsorted(ids, u)
    if len(u) and (index.max() >= len(ids) or not np.array_equal(ids[index], u)):
        raise ValueError("user holds ids that are not in user_ids")
    n_linear = np.bincount(index, np.asarray(linear) > 0, minlength=len(ids))
    n_last = np.bincount(index, np.asarray(last) > 0, minlength=len(ids))
    ratio = np.full(len(ids), np.nan)
    has_last = n_last > 0
    ratio[has_last] = n_linear[has_last] / n_last[has_last]
    return ratio


def gauc_gain_by_complexity(model: GAUC, baseline: GAUC, complexity: np.ndarray,
                            edges: Sequence[float] = DEFAULT_COMPLEXITY_EDGES,
                            ) -> ComplexityBreakdown:
    """Split the GAUC of a model and of a baseline by groups of path complexity.

    Both `GAUC`s must come from the same rows (same users), e.g. the main view of two runs on one
    test day. Group k holds the users with edges[k] <= complexity < edges[k + 1] (the last group
    is open-ended) that both GAUCs count; its GAUC is the click-weighted mean AUC of those users.

    Args:
        model: `gauc(...)` result of the model.
        baseline: `gauc(...)` result of the baseline on the same rows.
        complexity: [U] per user of `model.user_ids` (see `path_complexity`).
        edges: ascending lower bounds of the groups.
    Returns:
        `ComplexityBreakdown`; an empty group has NaN GAUCs.
    """
    if not np.array_equal(model.user_ids, baseline.user_ids):
        raise ValueError("model and baseline GAUC were computed on different users")
    lows = np.asarray(edges, dtype=np.float64)
    if lows.ndim != 1 or len(lows) == 0 or (np.diff(lows) <= 0).any():
        raise ValueError(f"edges must be a non-empty ascending sequence, got {list(edges)}")
    ratio = np.asarray(complexity, dtype=np.float64)
    if ratio.shape != model.user_ids.shape:
        raise ValueError("complexity must have one value per user of model.user_ids")

    counted = np.isfinite(model.user_auc) & np.isfinite(baseline.user_auc)
    group = np.searchsorted(lows, ratio, side="right") - 1
    grouped = counted & np.isfinite(ratio) & (group >= 0)
    g, clicks = group[grouped], model.user_clicks[grouped].astype(np.float64)
    k = len(lows)
    group_users = np.bincount(g, minlength=k)
    group_clicks = np.bincount(g, clicks, minlength=k)
    model_sum = np.bincount(g, clicks * model.user_auc[grouped], minlength=k)
    base_sum = np.bincount(g, clicks * baseline.user_auc[grouped], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        model_gauc, base_gauc = model_sum / group_clicks, base_sum / group_clicks
    highs = np.r_[lows[1:], np.inf]
    groups = tuple(ComplexityGroup(float(lows[i]), float(highs[i]), int(group_users[i]),
                                   int(group_clicks[i]), float(model_gauc[i]),
                                   float(base_gauc[i])) for i in range(k))
    excluded = counted & ~grouped
    return ComplexityBreakdown(groups, int(excluded.sum()),
                               int(model.user_clicks[excluded].sum()))


# --- one view in one call -------------------------------------------------------------------------

@dataclass(frozen=True)
class ViewMetrics:
    """Every metric of one view on one evaluated day: AUC, GAUC (and the users it counts),
    logloss, PCOC and ECE on binarised labels (paper-comparable), and AUC, GAUC with positives
    weighted by their attribution weight (§3.3 variant; it counts the same users as `gauc`).

    A metric the rows do not define is NaN (null when read from `metrics.json`), and `note` says
    why. `pcoc` and `ece` default to NaN so that metrics saved before they existed still load."""

    auc: Score
    gauc: Score
    gauc_users: int
    logloss: Score
    auc_weighted: Score
    gauc_weighted: Score
    pcoc: Score = math.nan
    ece: Score = math.nan
    note: str = ""
    """Why some metrics are undefined (e.g. no positive among the rows); empty when none is."""

    def __post_init__(self) -> None:
        _nan_for_null(self)

    def numbers(self) -> dict[str, float]:
        """Every metric by name (NaN where undefined), the note left out."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "note"}


@dataclass(frozen=True)
class ActionMetrics:
    """One target action under the KAML protocol (each row scored on its own target action):
    AUC (NaN for a single class, as `positives` shows), logloss, and the rows and positives
    scored."""

    auc: Score
    logloss: Score
    rows: int
    positives: int

    def __post_init__(self) -> None:
        _nan_for_null(self)


def _nan_for_null(metrics: ViewMetrics | ActionMetrics) -> None:
    """Metrics read from JSON as null (undefined) become NaN, as they were computed."""
    for f in dataclasses.fields(metrics):
        if getattr(metrics, f.name) is None:
            object.__setattr__(metrics, f.name, math.nan)


def view_metrics(probs: np.ndarray, weights: np.ndarray, user: np.ndarray) -> ViewMetrics:
    """Every metric of one view on one evaluated day.

    Args:
        probs: [N] predicted P(y = 1) of the view.
        weights: [N] raw attribution weights of the view (label = weight > 0).
        user: [N] user ids.
    """
    labels = (np.asarray(weights) > 0).astype(np.float64)
    attribution = attribution_sample_weight(weights)
    plain = gauc(probs, labels, user)
    return ViewMetrics(
        auc=float(auc(probs, labels)), gauc=float(plain.value), gauc_users=int(plain.users),
        logloss=float(logloss(probs, labels)),
        auc_weighted=float(auc(probs, labels, attribution)),
        gauc_weighted=float(gauc(probs, labels, user, attribution).value),
        pcoc=pcoc(probs, labels), ece=expected_calibration_error(probs, labels),
        note=undefined_note(labels, plain.users))


def undefined_note(labels: np.ndarray, gauc_users: int) -> str:
    """Why metrics of a view on these 0/1 `labels` are undefined (empty when none is)."""
    rows, positives = len(labels), int(np.count_nonzero(labels))
    if rows == 0:
        return "no row evaluated: every metric is undefined"
    if positives == 0:
        return f"no positive among the {rows:,} rows: AUC, GAUC and PCOC are undefined"
    if positives == rows:
        return f"no negative among the {rows:,} rows: AUC and GAUC are undefined"
    if gauc_users == 0:
        return "no user has both a positive and a negative: GAUC is undefined"
    return ""
