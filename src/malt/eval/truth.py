"""Scores against the simulator's truth, on simulated data (which carry it).

`malt simulate` writes each click's true conversion probability and its true credit (the
schema's `true_probability_column` and `true_credit_column`); no model reads them. Against
them:

* a run's scores (`score_against_truth`): logloss and Brier score against the true
  probability (logloss minus the truth's own entropy is the mean KL divergence, 0 only for the
  truth itself), Pearson and Spearman correlation with it, calibration to it (mean score over
  mean truth, and the mean gap over equal-count bins of the score), and the oracle: the AUC
  and GAUC the true probability itself scores on the view's labels, what a model that knew
  the generating process's chance would score;
* an attribution rule's weights (`score_attribution`): how far each click's credit lies from
  its true credit, over the clicks that any rule or the truth credits.

The true probability is that of the click's journey ending in a purchase, estimated by the
simulator from 48 plays of the journey's chance (standard error at most 0.036 per click): the
event the binarised `linear` and `mta` labels record (up to the attribution window), of which
`last` and `first` credit one click each; for those views read the correlations, not the
logloss.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from malt.data.schema import Schema
from malt.errors import ConfigError
from malt.eval.predictions import Predictions
from malt.metrics import auc, gauc, logloss

log = logging.getLogger(__name__)

TRUTH_BINS = 20
"""Equal-count bins of the score over which the calibration gap to the truth is averaged."""


@dataclass(frozen=True)
class Truth:
    """The truth of some rows, in row order: probability [N] and credit [N] float64 (None where
    the files do not hold that column)."""

    probability: np.ndarray | None
    credit: np.ndarray | None


def read_truth(schema: Schema, files: Sequence[Path]) -> Truth | None:
    """The truth columns of day `files`, rows in file order; None when the schema names none
    or the files do not all hold one."""
    wanted = [c for c in schema.truth_columns
              if all(c in pq.read_schema(f).names for f in files)]
    if not files or not wanted:
        return None
    parts = [pq.read_table(f, columns=wanted) for f in files]
    column = {c: np.concatenate([p[c].to_numpy().astype(np.float64) for p in parts])
              for c in wanted}
    return Truth(probability=column.get(schema.true_probability_column),
                 credit=column.get(schema.true_credit_column))


def truth_of_predictions(schema: Schema, day_files: Sequence[Path], predictions: Predictions
                         ) -> Truth | None:
    """The truth of the rows `predictions` scored: the files of its days among `day_files`
    (matched by name); None without truth or when the rows do not match the files."""
    by_name = {f.stem: f for f in day_files}
    if not predictions.days or any(d not in by_name for d in predictions.days):
        return None
    files = [by_name[d] for d in predictions.days]
    if [pq.ParquetFile(f).metadata.num_rows for f in files] != list(predictions.day_rows):
        return None
    return read_truth(schema, files)


def _mid_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N of `x` [N], ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or empty."""
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _calibration_gap(scores: np.ndarray, truth: np.ndarray, bins: int) -> float:
    """Σ_b (n_b / N) · |mean score_b − mean truth_b| over equal-count bins of the score."""
    n = len(scores)
    k = min(bins, n)
    if k == 0:
        return math.nan
    order = np.argsort(scores, kind="stable")
    edges = np.arange(k + 1, dtype=np.int64) * n // k
    gap = np.add.reduceat(scores[order] - truth[order], edges[:-1])
    return float(np.abs(gap).sum() / n)


def score_against_truth(scores: np.ndarray, probability: np.ndarray, labels: np.ndarray,
                        user: np.ndarray) -> dict[str, float]:
    """Scores [N] in [0, 1] against the true probability [N], with the oracle on the 0/1
    `labels` [N] of users `user` [N]. Keys: logloss, entropy (the truth's own logloss, the
    floor), brier, pearson, spearman, calibration (mean score / mean truth), calibration_gap,
    oracle_auc, oracle_gauc."""
    q = np.asarray(scores, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    return {
        "logloss": logloss(q, p),
        "entropy": logloss(p, p),
        "brier": float(np.mean((q - p) ** 2)) if len(q) else math.nan,
        "pearson": _correlation(q, p),
        "spearman": _correlation(_mid_ranks(q), _mid_ranks(p)),
        "calibration": float(q.sum() / p.sum()) if p.sum() > 0 else math.nan,
        "calibration_gap": _calibration_gap(q, p, TRUTH_BINS),
        "oracle_auc": float(auc(p, labels)),
        "oracle_gauc": gauc(p, labels, user).value,
    }


def truth_metrics(predictions: Predictions, truth: Truth | None
                  ) -> dict[str, dict[str, float]] | None:
    """View -> `score_against_truth` of its scores (labels binarised); None without a true
    probability, or when the truth is not of the scored rows (with a warning)."""
    if truth is None or truth.probability is None:
        return None
    if len(truth.probability) != len(predictions.user):
        log.warning("the truth holds %d rows but %d were scored: not scored against it",
                    len(truth.probability), len(predictions.user))
        return None
    return {view: score_against_truth(predictions.view(view), truth.probability,
                                      (predictions.label_weights(view) > 0).astype(np.float64),
                                      predictions.user)
            for view in predictions.views}


def score_attribution(weights: np.ndarray, credit: np.ndarray) -> dict[str, float]:
    """One rule's per-click weights [N] against the true credit [N], over the clicks either
    credits. Keys: clicks, mae (mean |weight − credit|), pearson, false_credit (share of the
    rule's credit given to clicks that caused nothing), missed_credit (share of the true credit
    the rule gives no click)."""
    w = np.asarray(weights, dtype=np.float64)
    c = np.asarray(credit, dtype=np.float64)
    rows = (w > 0) | (c > 0)
    w, c = w[rows], c[rows]
    return {
        "clicks": float(rows.sum()),
        "mae": float(np.abs(w - c).mean()) if len(w) else math.nan,
        "pearson": _correlation(w, c),
        "false_credit": float(w[c == 0].sum() / w.sum()) if w.sum() > 0 else math.nan,
        "missed_credit": float(c[w == 0].sum() / c.sum()) if c.sum() > 0 else math.nan,
    }


def score_rules(schema: Schema, files: Sequence[Path]) -> dict[str, dict[str, float]]:
    """Label -> `score_attribution` of its weights in day `files` against their true credit;
    a `ConfigError` when the files hold no true credit."""
    truth = read_truth(schema, files)
    if truth is None or truth.credit is None:
        raise ConfigError(f"the days {[str(f) for f in files]} hold no true credit column "
                          f"('{schema.true_credit_column}'); `malt simulate` writes it")
    parts = [pq.read_table(f, columns=list(schema.labels)) for f in files]
    return {label: score_attribution(np.concatenate([p[label].to_numpy() for p in parts]),
                                     truth.credit)
            for label in schema.labels}


def format_truth(metrics: dict[str, dict[str, float | None]], main: str) -> str:
    """A fixed-width table: one row per view, main view first."""
    lines = [f"{'view':<10}{'logloss':>9}{'floor':>8}{'Brier':>9}{'Pearson':>9}{'Spearman':>9}"
             f"{'calib':>7}{'gap':>8}{'AUC*':>8}{'GAUC*':>8}"]
    for view in sorted(metrics, key=lambda v: v != main):
        # Read back from metrics.json, an undefined metric is None.
        m = {k: math.nan if v is None else v for k, v in metrics[view].items()}
        name = f"{view}*" if view == main else view
        lines.append(f"{name:<10}{m['logloss']:>9.4f}{m['entropy']:>8.4f}{m['brier']:>9.5f}"
                     f"{m['pearson']:>9.4f}{m['spearman']:>9.4f}{m['calibration']:>7.3f}"
                     f"{m['calibration_gap']:>8.5f}{m['oracle_auc']:>8.4f}"
                     f"{m['oracle_gauc']:>8.4f}")
    lines.append("against the true conversion probability: logloss (floor: the truth's own), "
                 "Brier, correlations, calib = mean score / mean truth, gap = mean |score - "
                 f"truth| over {TRUTH_BINS} bins of the score; AUC*/GAUC*: the truth's own on "
                 "the view's labels (the oracle)")
    return "\n".join(lines)


def format_attribution(scores: dict[str, dict[str, float]]) -> str:
    """A fixed-width table: one row per rule."""
    lines = [f"{'rule':<10}{'clicks':>10}{'MAE':>9}{'Pearson':>9}{'false credit':>14}"
             f"{'missed credit':>15}"]
    for rule, s in scores.items():
        lines.append(f"{rule:<10}{int(s['clicks']):>10,}{s['mae']:>9.4f}{s['pearson']:>9.4f}"
                     f"{s['false_credit']:>14.1%}{s['missed_credit']:>15.1%}")
    lines.append("over the clicks the rule or the truth credits; false credit: the rule's "
                 "credit on clicks that caused nothing; missed: true credit the rule gives "
                 "no click")
    return "\n".join(lines)
