"""Target-action evaluation (KAML protocol) against a slow reference; RelaImpr per column."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from malt.eval.predictions import Predictions
from malt.eval.target import ALL, rela_impr_columns, target_metrics, target_pairs

LABELS = ("a", "b", "c", "d")


def _predictions(seed=0, n=400, views=("a", "b", "c")) -> Predictions:
    rng = np.random.default_rng(seed)
    weights = (rng.random((n, len(LABELS))) < 0.3) * rng.uniform(0.2, 1, (n, len(LABELS)))
    return Predictions(views=views, labels=LABELS,
                       probs=rng.uniform(0.01, 0.99, (n, len(views))).astype(np.float32),
                       weights=weights.astype(np.float32), user=rng.integers(0, 30, n),
                       target_action=rng.integers(-1, len(LABELS), n))


@pytest.mark.parametrize("seed", range(3))
def test_each_row_is_scored_once_on_its_target(seed):
    p = _predictions(seed)
    got = target_metrics(p)
    pairs: dict[str, tuple[list, list]] = {v: ([], []) for v in (*p.views, ALL)}
    for i in range(len(p.user)):
        t = p.target_action[i]
        if t < 0 or LABELS[t] not in p.views:        # "other", or an action without a head
            continue
        view = LABELS[t]
        score, label = p.probs[i, p.views.index(view)], float(p.weights[i, t] > 0)
        for key in (view, ALL):
            pairs[key][0].append(score)
            pairs[key][1].append(label)
    assert list(got) == [*p.views, ALL]
    for key, (scores, labels) in pairs.items():
        assert got[key].rows == len(scores) and got[key].positives == sum(labels)
        assert got[key].auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert got[key].logloss == pytest.approx(log_loss(labels, scores), rel=1e-6)
    probs, labels, action = target_pairs(p)
    assert len(probs) == got[ALL].rows and set(action) <= {0, 1, 2}


def test_an_action_with_one_class_has_no_auc():
    p = _predictions(1)
    p.weights[p.target_action == 0, 0] = 0.0
    got = target_metrics(p)
    assert math.isnan(got["a"].auc) and got["a"].positives == 0
    assert math.isfinite(got["a"].logloss)


# KAML paper Table 2 AUCs (SingleTask first) and the RelaImpr row the paper reports.
TABLE2 = {
    "SingleTask": {"A": 0.8498, "B": 0.8921, "C": 0.9102, "D": 0.8177, "E": 0.9038},
    "MMoE": {"A": 0.8448, "B": 0.8921, "C": 0.9139, "D": 0.8300, "E": 0.9061, "All": 0.9108},
    "SharedBottom": {"A": 0.8446, "B": 0.8923, "C": 0.9142, "D": 0.8388, "E": 0.9062,
                     "All": 0.9108},
    "PLE": {"A": 0.8466, "B": 0.8928, "C": 0.9131, "D": 0.8370, "E": 0.9054, "All": 0.9115},
    "TAML": {"A": 0.8467, "B": 0.8935, "C": 0.9132, "D": 0.8297, "E": 0.9062, "All": 0.9116},
    "STAR": {"A": 0.8431, "B": 0.8900, "C": 0.9121, "D": 0.8325, "E": 0.9061, "All": 0.9095},
}
KAML = {"A": 0.8510, "B": 0.8951, "C": 0.9162, "D": 0.8714, "E": 0.9139, "All": 0.9133}
REPORTED = {"A": 1.24, "B": 0.41, "C": 0.48, "D": 9.62, "E": 1.89, "All": 0.41}


def test_rela_impr_reproduces_table2_against_the_multi_task_baselines():
    multi_task = {k: v for k, v in TABLE2.items() if k != "SingleTask"}
    got = rela_impr_columns(KAML, multi_task)
    for column, reported in REPORTED.items():
        value, used = got[column]
        # The paper rounds to 0.01 %; E is printed 1.89 % and 1.90 % in different places.
        assert 100 * value == pytest.approx(reported, abs=0.011)
        assert used == max(multi_task, key=lambda m: multi_task[m].get(column, -1))
    with_single = rela_impr_columns(KAML, TABLE2)
    assert with_single["A"][1] == "SingleTask"
    assert 100 * with_single["A"][0] == pytest.approx(0.34, abs=0.01)     # not the paper's 1.24
    assert with_single["All"][1] != "SingleTask"                             # it has no "All"
    assert rela_impr_columns({"Z": 0.7}, multi_task) == {"Z": (pytest.approx(math.nan,
                                                                             nan_ok=True), "")}
