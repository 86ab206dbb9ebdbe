"""Scores against the simulated truth: the metrics, reading the columns, the run record, eval."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import stats

from malt.cli import main
from malt.data.layout import find_layout
from malt.data.schema import MAC
from malt.errors import ConfigError
from malt.eval.predictions import Predictions
from malt.eval.truth import (
    TRUTH_BINS,
    Truth,
    _mid_ranks,
    format_attribution,
    format_truth,
    read_truth,
    score_against_truth,
    score_attribution,
    score_rules,
    truth_metrics,
    truth_of_predictions,
)
from malt.jobs.train import train_run
from malt.metrics import auc, gauc
from malt.runs.config import RunConfig
from malt.runs.record import RunMetrics
from support.mac_data import write_random_dataset


def _rows(n: int = 2_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.beta(0.5, 5.0, n)
    labels = (rng.random(n) < truth).astype(np.float64)
    user = rng.integers(0, 60, n)
    return truth, labels, user, rng


def test_the_truth_scores_itself_perfectly():
    truth, labels, user, _ = _rows()
    m = score_against_truth(truth, truth, labels, user)
    assert m["logloss"] == pytest.approx(m["entropy"])
    assert m["brier"] == 0 and m["calibration_gap"] == 0
    assert m["pearson"] == pytest.approx(1) and m["spearman"] == pytest.approx(1)
    assert m["calibration"] == pytest.approx(1)
    assert m["oracle_auc"] == auc(truth, labels)
    assert m["oracle_gauc"] == gauc(truth, labels, user).value


def test_metrics_against_references():
    truth, labels, user, rng = _rows(seed=1)
    scores = truth * 1.5 + rng.normal(0, 0.05, len(truth))
    scores[:300] = np.round(scores[:300], 2)  # ties
    scores = np.clip(scores, 1e-4, 1 - 1e-4)
    m = score_against_truth(scores, truth, labels, user)
    assert m["spearman"] == pytest.approx(stats.spearmanr(scores, truth).statistic)
    assert m["pearson"] == pytest.approx(stats.pearsonr(scores, truth).statistic)
    assert m["brier"] == pytest.approx(np.mean((scores - truth) ** 2))
    expected = -np.mean(truth * np.log(scores) + (1 - truth) * np.log(1 - scores))
    assert m["logloss"] == pytest.approx(expected)
    assert m["logloss"] > m["entropy"]
    assert m["calibration"] == pytest.approx(scores.sum() / truth.sum())
    order = np.argsort(scores, kind="stable")
    gap = sum(abs((scores[order][b] - truth[order][b]).sum())
              for b in np.array_split(np.arange(len(scores)), TRUTH_BINS))
    assert m["calibration_gap"] == pytest.approx(gap / len(scores))
    assert m["calibration_gap"] > 0.01


def test_mid_ranks_match_scipy():
    x = np.random.default_rng(2).integers(0, 7, 500).astype(float)
    np.testing.assert_allclose(_mid_ranks(x), stats.rankdata(x))


def test_attribution_scores_on_a_hand_made_journey():
    # One purchase over three clicks: true shares 0.6, 0.4, 0 (the last click did nothing);
    # a fourth click is neither credited nor causal and is left out.
    credit = np.array([0.6, 0.4, 0.0, 0.0])
    last = score_attribution(np.array([0.0, 0.0, 1.0, 0.0]), credit)
    assert last["clicks"] == 3
    assert last["mae"] == pytest.approx((0.6 + 0.4 + 1.0) / 3)
    assert last["false_credit"] == 1.0 and last["missed_credit"] == 1.0
    linear = score_attribution(np.array([1, 1, 1, 0]) / 3, credit)
    assert linear["false_credit"] == pytest.approx(1 / 3) and linear["missed_credit"] == 0
    exact = score_attribution(credit, credit)
    assert exact["mae"] == 0 and exact["pearson"] == pytest.approx(1)
    shown = format_attribution({"last": last, "exact": exact})
    assert "100.0%" in shown and "exact" in shown


def _with_truth(root: Path, seed: int = 0) -> Path:
    """Random MAC days plus truth columns: the truth probability drives the last label."""
    write_random_dataset(root, days=3, rows=300, seed=seed)
    rng = np.random.default_rng(seed)
    for path in find_layout(root).days:
        table = pq.read_table(path)
        truth = rng.uniform(0, 0.6, table.num_rows)
        last = np.where(rng.random(table.num_rows) < truth, 1.0, 0.0)
        table = table.set_column(table.schema.get_field_index("last"), "last", [last])
        table = table.append_column("true_cvr", [truth])
        table = table.append_column("true_credit", [last * rng.uniform(0, 1, len(last))])
        pq.write_table(table, path)
    return root


def test_read_truth_and_its_absence(tmp_path):
    data = _with_truth(tmp_path / "sim")
    files = list(find_layout(data).days)
    truth = read_truth(MAC, files)
    assert len(truth.probability) == len(truth.credit) == 900
    np.testing.assert_array_equal(truth.probability[:300],
                                  pq.read_table(files[0])["true_cvr"].to_numpy())
    plain = write_random_dataset(tmp_path / "plain")
    assert read_truth(MAC, list(find_layout(plain).days)) is None
    predictions = Predictions(views=("last",), labels=MAC.labels,
                              probs=np.full((300, 1), 0.1, np.float32),
                              weights=np.zeros((300, 4), np.float32), user=np.zeros(300, int),
                              days=("test",), day_rows=(300,))
    assert len(truth_of_predictions(MAC, files, predictions).probability) == 300
    other = Predictions(**{**vars(predictions), "day_rows": (299,)})
    assert truth_of_predictions(MAC, files, other) is None
    assert truth_metrics(predictions, truth) is None  # 900 truth rows for 300 scored


def _config(data: Path) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 7, "data": {"path": str(data)}, "task": {"main": "last", "aux": ["first"]},
        "train": {"batch_size": 64},
        "model": {"name": "mmoe", "encoder": {"embed_dim": 8, "attention_heads": 2},
                  "expert": {"dim": 16}, "tower": {"dims": [8, 4]}}})


def test_a_run_on_simulated_data_records_and_prints_its_truth(tmp_path, capsys, caplog):
    data = _with_truth(tmp_path / "sim")
    metrics = train_run(_config(data), tmp_path / "run")
    assert not [r for r in caplog.records if "does not name" in r.getMessage()]
    assert set(metrics.truth) == {"last", "first"}
    predictions = Predictions.load(tmp_path / "run" / "predictions.npz")
    truth = pq.read_table(data / "test" / "test.parquet")["true_cvr"].to_numpy()
    labels = (predictions.label_weights("last") > 0).astype(float)
    assert metrics.truth["last"] == score_against_truth(predictions.view("last"), truth, labels,
                                                        predictions.user)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert RunMetrics.from_dict(saved) == metrics
    capsys.readouterr()
    assert main(["eval", "--run", str(tmp_path / "run")]) == 0
    shown = capsys.readouterr().out
    assert f"{metrics.truth['last']['oracle_auc']:.4f}" in shown and "Spearman" in shown
    assert main(["eval", "--run", str(tmp_path / "run"), "--data", str(data)]) == 0
    assert f"{metrics.truth['last']['spearman']:.4f}" in capsys.readouterr().out


def test_a_run_without_truth_records_none(tmp_path, capsys):
    data = write_random_dataset(tmp_path / "plain")
    assert train_run(_config(data), tmp_path / "run").truth is None
    capsys.readouterr()
    assert main(["eval", "--run", str(tmp_path / "run")]) == 0
    assert "Spearman" not in capsys.readouterr().out


def test_undefined_truth_metrics_round_trip_as_null():
    metrics = {"last": {**dict.fromkeys(("logloss", "entropy", "brier", "pearson", "spearman",
                                          "calibration", "calibration_gap", "oracle_auc"), 0.5),
                        "oracle_gauc": None}}
    shown = format_truth(metrics, "last")
    assert "nan" in shown and math.isnan(float(shown.splitlines()[1].split()[-1]))


def test_data_truth_scores_every_label_and_refuses_data_without_truth(tmp_path, capsys):
    data = _with_truth(tmp_path / "sim")
    test_day = data / "test" / "test.parquet"
    rules = score_rules(MAC, [test_day])
    table = pq.read_table(test_day)
    assert rules["last"] == score_attribution(table["last"].to_numpy(),
                                              table["true_credit"].to_numpy())
    assert main(["data", "truth", "--data", str(data), "--split", "test"]) == 0
    shown = capsys.readouterr().out
    for label in MAC.labels:
        assert f"{label:<10}{int(rules[label]['clicks']):>10,}{rules[label]['mae']:>9.4f}" in shown
    plain = write_random_dataset(tmp_path / "plain")
    assert main(["data", "truth", "--data", str(plain)]) == 3
    assert "true_credit" in capsys.readouterr().err


def test_calibration_gap_keeps_every_bin_apart():
    # 40 rows in 20 bins of 2 whose gaps alternate in sign: merging any two bins cancels them.
    scores = np.linspace(0.05, 0.95, 40)
    truth = scores + np.repeat(np.resize([0.01, -0.01], 20), 2)
    m = score_against_truth(scores, truth, (truth > 0.5).astype(float), np.arange(40) % 4)
    assert m["calibration_gap"] == pytest.approx(0.01)
    one = score_against_truth(np.array([0.3]), np.array([0.1]), np.array([1.0]), np.zeros(1))
    assert one["calibration_gap"] == pytest.approx(0.2) and one["brier"] == pytest.approx(0.04)


def test_calibration_gap_bins_tied_scores_in_row_order():
    rng = np.random.default_rng(4)
    scores = rng.integers(1, 4, 1_000) / 4  # three values, many ties across the bin edges
    truth = rng.random(1_000)
    m = score_against_truth(scores, truth, (truth > 0.5).astype(float), np.arange(1_000) % 9)
    order = np.argsort(scores, kind="stable")
    gap = sum(abs((scores[order][b] - truth[order][b]).sum())
              for b in np.array_split(np.arange(1_000), TRUTH_BINS))
    assert m["calibration_gap"] == pytest.approx(gap / 1_000, rel=1e-12)


def test_truth_metrics_are_computed_in_float64():
    truth, labels, user, rng = _rows(n=500, seed=5)
    scores = np.clip(truth + rng.normal(0, 0.05, 500), 1e-3, 1 - 1e-3)
    low = score_against_truth(scores.astype(np.float32), truth.astype(np.float32), labels, user)
    high = score_against_truth(scores.astype(np.float32).astype(np.float64),
                               truth.astype(np.float32).astype(np.float64), labels, user)
    assert low == high
    # Rules that credit other clicks than the truth: false and missed credit above 0.
    credit = np.where(labels > 0, truth, 0).astype(np.float32)
    weights = np.where(rng.random(500) < 0.2, scores, 0).astype(np.float32)
    low = score_attribution(weights, credit)
    assert low["false_credit"] > 0 and low["missed_credit"] > 0
    assert low == score_attribution(weights.astype(np.float64), credit.astype(np.float64))


def test_calibration_is_undefined_only_without_true_probability():
    labels, user = np.array([0.0, 1.0]), np.zeros(2)
    small = score_against_truth(np.array([0.2, 0.4]), np.array([0.1, 0.2]), labels, user)
    assert small["calibration"] == pytest.approx(2.0)  # a truth summing below 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = score_against_truth(np.array([0.2, 0.4]), np.zeros(2), labels, user)
        empty = score_against_truth(np.array([]), np.array([]), np.array([]), np.array([]))
    assert math.isnan(none["calibration"])
    assert all(math.isnan(v) for v in empty.values())


def test_attribution_shares_are_fractions_of_unnormalised_credit():
    credit = np.array([3.0, 1.0, 0.0, 0.0])
    rule = score_attribution(np.array([0.0, 2.0, 6.0, 0.0]), credit)
    assert rule["false_credit"] == pytest.approx(6 / 8)
    assert rule["missed_credit"] == pytest.approx(3 / 4)
    assert rule["mae"] == pytest.approx((3 + 1 + 6) / 3)
    # A credit of standard deviation exactly 1 is not constant.
    spread = np.array([1.0, 3.0])
    assert score_attribution(spread, spread)["pearson"] == pytest.approx(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nothing = score_attribution(np.zeros(3), np.zeros(3))
    assert nothing["clicks"] == 0
    assert all(math.isnan(nothing[k]) for k in ("mae", "pearson", "false_credit",
                                                 "missed_credit"))
    uncredited = score_attribution(np.zeros(2), np.array([0.5, 0.5]))
    assert math.isnan(uncredited["false_credit"]) and uncredited["missed_credit"] == 1


def test_truth_metrics_score_every_view_on_its_binarised_labels(caplog):
    truth, _, user, rng = _rows(n=400, seed=6)
    probs = np.clip(truth[:, None] + rng.normal(0, 0.05, (400, 2)), 1e-3, 1 - 1e-3)
    weights = rng.choice([0.0, 0.5, 1.0], (400, 2)).astype(np.float32)
    predictions = Predictions(views=("last", "first"), labels=("last", "first"),
                              probs=probs.astype(np.float32), weights=weights, user=user,
                              days=("test",), day_rows=(400,))
    metrics = truth_metrics(predictions, Truth(probability=truth, credit=None))
    for view in ("last", "first"):
        labels = (predictions.label_weights(view) > 0).astype(np.float64)
        assert metrics[view] == score_against_truth(predictions.view(view), truth, labels, user)
    assert metrics["last"] != metrics["first"]
    assert truth_metrics(predictions, Truth(probability=None, credit=truth)) is None
    with caplog.at_level(logging.WARNING, logger="malt.eval.truth"):
        assert truth_metrics(predictions, Truth(probability=truth[:300], credit=None)) is None
    assert caplog.messages == ["the truth holds 300 rows but 400 were scored: not scored "
                               "against it"]


def test_read_truth_needs_every_file_to_hold_a_column(tmp_path):
    data = _with_truth(tmp_path / "sim")
    files = list(find_layout(data).days)
    assert read_truth(MAC, []) is None
    first = pq.read_table(files[0])
    pq.write_table(first.drop_columns(["true_credit"]), files[0])
    truth = read_truth(MAC, files)
    assert truth.credit is None and truth.probability.dtype == np.float64
    np.testing.assert_array_equal(truth.probability, np.concatenate(
        [pq.read_table(f)["true_cvr"].to_numpy() for f in files]))
    only_credit = read_truth(MAC, files[1:2])
    np.testing.assert_array_equal(only_credit.credit,
                                  pq.read_table(files[1])["true_credit"].to_numpy())
    pq.write_table(first.drop_columns(["true_cvr", "true_credit"]), files[0])
    assert read_truth(MAC, files) is None
    predictions = Predictions(views=("last",), labels=MAC.labels,
                              probs=np.full((300, 1), 0.1, np.float32),
                              weights=np.zeros((300, 4), np.float32), user=np.zeros(300, int),
                              days=("day-9",), day_rows=(300,))
    assert truth_of_predictions(MAC, files, predictions) is None  # a day the files lack


def test_score_rules_names_the_days_without_true_credit(tmp_path):
    plain = write_random_dataset(tmp_path / "plain")
    day = find_layout(plain).days[0]
    with pytest.raises(ConfigError) as refused:
        score_rules(MAC, [day])
    assert str(refused.value) == (f"the days ['{day}'] hold no true credit column "
                                  "('true_credit'); `malt simulate` writes it")


def test_format_truth_lines():
    row = {"logloss": 0.41234, "entropy": 0.39871, "brier": 0.012344, "pearson": 0.8123,
           "spearman": 0.79, "calibration": 1.0456, "calibration_gap": 0.004321,
           "oracle_auc": 0.7789, "oracle_gauc": 0.6543}
    lines = format_truth({"first": {**row, "pearson": None}, "last": row}, "last").splitlines()
    assert lines == [
        "view        logloss   floor    Brier  Pearson Spearman  calib     gap    AUC*   GAUC*",
        "last*        0.4123  0.3987  0.01234   0.8123   0.7900  1.046 0.00432  0.7789  0.6543",
        "first        0.4123  0.3987  0.01234      nan   0.7900  1.046 0.00432  0.7789  0.6543",
        "against the true conversion probability: logloss (floor: the truth's own), Brier, "
        "correlations, calib = mean score / mean truth, gap = mean |score - truth| over 20 bins "
        "of the score; AUC*/GAUC*: the truth's own on the view's labels (the oracle)",
    ]


def test_format_attribution_lines():
    scores = {"last": {"clicks": 12345.0, "mae": 0.25, "pearson": -0.125, "false_credit": 0.5,
                       "missed_credit": 0.0625},
              "linear": {"clicks": 7.0, "mae": 0.1, "pearson": 0.9, "false_credit": 0.0,
                         "missed_credit": 1.0}}
    assert format_attribution(scores).splitlines() == [
        "rule          clicks      MAE  Pearson  false credit  missed credit",
        "last          12,345   0.2500  -0.1250         50.0%           6.2%",
        "linear             7   0.1000   0.9000          0.0%         100.0%",
        "over the clicks the rule or the truth credits; false credit: the rule's credit on "
        "clicks that caused nothing; missed: true credit the rule gives no click",
    ]
