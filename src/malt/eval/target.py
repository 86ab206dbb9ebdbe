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
from collections.abc import Mapping

import numpy as np

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
    if predictions.target_action is None:
        raise ValueError("the predictions hold no target actions (the data has no "
                         "target-action column)")
    column = np.full(len(predictions.labels), -1, dtype=np.int64)
    for c, view in enumerate(predictions.views):
        column[predictions.labels.index(view)] = c
    target = predictions.target_action
    rows = np.flatnonzero(target >= 0)
    rows = rows[column[target[rows]] >= 0]
    action = target[rows]
    probs = predictions.probs[rows, column[action]].astype(np.float64)
    labels = (predictions.weights[rows, action] > 0).astype(np.float64)
    return probs, labels, action


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
