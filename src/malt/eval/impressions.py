"""Scores over the entire impression space, on impression logs (a schema's `click_column`).

The views' usual metrics (`malt.eval.report`) score the conversion rate on the clicked rows,
as ESMM does. Here, per view:

* `clicked`: the share of impressions clicked;
* for an entire-space model (one with a click head, `malt.models.entire_space`): `ctr_auc`, its
  pCTR's AUC on the clicks over every impression, and `ctcvr_auc` / `ctcvr_gauc`, those of
  pCTR × pCVR on click ∧ conversion over every impression, what ESMM reports for CTCVR;
* where the evaluation days hold the simulator's truth (`malt simulate --impressions`), the
  conversion rate against the true conversion probability (`malt.eval.truth`) on the clicked
  (`clicks_*`) and on the unclicked (`unclicked_*`) impressions: a model trained on clicks
  alone is fitted where the first are and applied where the second are. Every impression
  together is `RunMetrics.truth`.
"""

from __future__ import annotations

import numpy as np

from malt.eval.predictions import Predictions
from malt.eval.truth import Truth, score_against_truth
from malt.metrics import auc, gauc

TRUTH_KEYS = ("logloss", "entropy", "pearson", "spearman", "calibration", "calibration_gap")
"""The truth scores kept per subset (the oracle's AUCs belong to the labels, not the rows)."""


def impression_metrics(predictions: Predictions, truth: Truth | None = None
                       ) -> dict[str, dict[str, float | None]] | None:
    """View -> its entire-space scores (see the module docstring); None when the predictions
    are not of impression logs. `truth` is that of the predictions' rows, in order."""
    p = predictions
    if p.click is None:
        return None
    clicked = p.click > 0
    out: dict[str, dict[str, float | None]] = {}
    for view in p.views:
        labels = (p.label_weights(view) > 0).astype(np.float64)
        scores: dict[str, float | None] = {"clicked": float(clicked.mean()) if len(p.click)
                                           else None}
        if p.ctr is not None:
            ctcvr = p.ctr * p.view(view)
            scores["ctr_auc"] = auc(p.ctr, clicked.astype(np.float64))
            scores["ctcvr_auc"] = auc(ctcvr, labels)
            scores["ctcvr_gauc"] = gauc(ctcvr, labels, p.user).value
        if truth is not None and truth.probability is not None and \
                len(truth.probability) == len(p.user):
            for name, rows in (("clicks", clicked), ("unclicked", ~clicked)):
                if rows.any():
                    against = score_against_truth(p.view(view)[rows], truth.probability[rows],
                                                  labels[rows], p.user[rows])
                    scores |= {f"{name}_{k}": against[k] for k in TRUTH_KEYS}
        out[view] = scores
    return out


def format_impressions(metrics: dict[str, dict[str, float | None]], main: str) -> str:
    """A fixed-width table: one row per view, main view first; absent scores as '-'."""
    columns = [("clicked", "clicked", ".3f"), ("ctr_auc", "CTR AUC", ".4f"),
               ("ctcvr_auc", "CTCVR AUC", ".4f"), ("ctcvr_gauc", "CTCVR GAUC", ".4f"),
               ("clicks_calibration", "calib@click", ".3f"),
               ("unclicked_calibration", "calib@unclick", ".3f"),
               ("unclicked_logloss", "LL@unclick", ".4f")]
    lines = ["view      " + "".join(f"{title:>14}" for _, title, _ in columns)]
    for view in sorted(metrics, key=lambda v: v != main):
        m = metrics[view]
        cells = [format(m[k], f) if m.get(k) is not None else "-" for k, _, f in columns]
        lines.append(f"{(view + '*' if view == main else view):<10}"
                     + "".join(f"{c:>14}" for c in cells))
    lines.append("entire space: CTR / CTCVR over every impression (entire-space models); "
                 "calib = mean pCVR / mean true conversion probability and LL the logloss "
                 "against it, on clicked and unclicked impressions (simulated data)")
    return "\n".join(lines)
