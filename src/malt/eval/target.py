"""Evaluation of incomplete multi-label data as the KAML paper defines it (§4.1.4).

Each evaluated row is scored once, on its campaign's target action: the pair
(p_{i, o_i}, y_{i, o_i}). Per action a, AUC and logloss over the rows with o_i = a; "all" pools
the pairs of every row whose target is an evaluated action (rows targeting "other" or an
action the model has no head for are left out). The label is the observed one: a campaign
always reports its target, so observed and true labels agree there.

RelaImpr (Eq. 14) compares a model's AUC with the best of a set of baselines per column; the
paper's Table 2 figures come out only when single-task models are left out of that set (see
`malt.metrics.rela_impr_best`), so the caller chooses the set and every value names the
baseline it used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from malt.bootstrap import PairedDelta, paired_bootstrap
from malt.errors import ConfigError
from malt.eval.predictions import Predictions
from malt.metrics import ActionMetrics, auc, logloss, rela_impr_best

ALL = "all"
"""Key of the pooled column."""


def target_pairs(predictions: Predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scored pairs of the rows with an evaluated target.

    Returns:
        probs [M] float64 (each row's probability of its target action), labels [M] float64
        (observed label of that action), action [M] int64 (label index of the target).
    """
    rows, column = _target_rows(predictions)
    action = predictions.target_action[rows]
    probs = predictions.probs[rows, column[action]].astype(np.float64)
    labels = (predictions.weights[rows, action] > 0).astype(np.float64)
    return probs, labels, action


def _target_rows(predictions: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """The rows with an evaluated target [M], and the prediction column of each label [K]
    (-1 for a label without a head)."""
    if predictions.target_action is None:
        raise ValueError("the predictions hold no target actions (the data has no "
                         "target-action column)")
    column = np.full(len(predictions.labels), -1, dtype=np.int64)
    for c, view in enumerate(predictions.views):
        column[predictions.labels.index(view)] = c
    target = predictions.target_action
    rows = np.flatnonzero(target >= 0)
    return rows[column[target[rows]] >= 0], column


def target_comparison(candidate: Sequence[Predictions], baseline: Sequence[Predictions], *,
                      resamples: int, seed: int = 0) -> dict[str, PairedDelta]:
    """AUC of the candidate's runs minus the baseline's under the target protocol, paired
    seed by seed and over users: per evaluated action (in view order) and `all`. The runs
    must have scored the same rows."""
    first = candidate[0]
    rows, _ = _target_rows(first)
    runs = [*candidate, *baseline]
    pairs = [target_pairs(p) for p in runs]
    if any(not p.same_rows(first) for p in runs) or \
            any(len(p[0]) != len(rows) or not np.array_equal(p[1], pairs[0][1]) for p in pairs):
        raise ConfigError("the runs were evaluated on other rows; score them on the same data")
    labels, action, user = pairs[0][1], pairs[0][2], first.user[rows]
    seeds = len(candidate)
    out = {}
    for name, keep in [*((v, action == first.labels.index(v)) for v in first.views),
                       (ALL, np.ones(len(rows), dtype=bool))]:
        if 0 < labels[keep].sum() < keep.sum():
            out[name] = paired_bootstrap([p[0][keep] for p in pairs[:seeds]],
                                         [p[0][keep] for p in pairs[seeds:]], labels[keep],
                                         user[keep], metrics=("auc",), resamples=resamples,
                                         seed=seed)["auc"]
    return out


def target_metrics(predictions: Predictions) -> dict[str, ActionMetrics]:
    """Per evaluated action (in view order) and `all`.

    AUC is NaN for an action whose rows hold a single class (or none).
    """
    probs, labels, action = target_pairs(predictions)
    out = {}
    for view in predictions.views:
        rows = action == predictions.labels.index(view)
        out[view] = _metrics(probs[rows], labels[rows])
    out[ALL] = _metrics(probs, labels)
    return out


def _metrics(probs: np.ndarray, labels: np.ndarray) -> ActionMetrics:
    return ActionMetrics(auc=float(auc(probs, labels)) if len(probs) else math.nan,
                         logloss=float(logloss(probs, labels)) if len(probs) else math.nan,
                         rows=int(len(probs)), positives=int(labels.sum()))


def rela_impr_columns(model: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]]
                      ) -> dict[str, tuple[float, str]]:
    """RelaImpr of `model` {column: AUC} against the best baseline of each column.

    Args:
        model: column -> the model's AUC.
        baselines: baseline name -> {column: AUC}; a baseline without a finite AUC in a column
            does not compete there.
    Returns:
        column -> (RelaImpr as a fraction, name of the baseline used); NaN and "" when no
        baseline has the column.
    """
    out = {}
    for column, value in model.items():
        scores = {name: aucs[column] for name, aucs in baselines.items()
                  if column in aucs and math.isfinite(aucs[column])}
        out[column] = rela_impr_best(value, scores) if scores and math.isfinite(value) \
            else (math.nan, "")
    return out


def format_target_metrics(metrics: Mapping[str, ActionMetrics]) -> str:
    """A fixed-width table: one row per action, `all` last."""
    lines = [f"{'target':<16}{'AUC':>9}{'logloss':>10}{'rows':>10}{'positives':>11}"]
    for name, m in metrics.items():
        lines.append(f"{name:<16}{m.auc:>9.4f}{m.logloss:>10.4f}{m.rows:>10,}"
                     f"{m.positives:>11,}")
    lines.append("each row scored once, on its campaign's target action (KAML protocol)")
    return "\n".join(lines)
