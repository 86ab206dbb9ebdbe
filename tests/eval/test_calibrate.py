"""Fitting calibrators: isotonic as scikit-learn fits it, Platt and temperature scaling against
examples worked by hand, better logloss and ECE on a miscalibrated model, and every fitted map
monotone within [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from malt.errors import ConfigError, DataError
from malt.eval.calibrate import (
    calibration_effect,
    fit_calibration,
    fit_isotonic,
    fit_platt,
    fit_temperature,
    format_calibration_effect,
    platt_targets,
)
from malt.eval.predictions import Predictions
from malt.metrics import expected_calibration_error, logloss
from malt.runs.calibration import Calibration


def logit(p):
    return np.log(p / (1 - p))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_isotonic_breakpoints_predict_what_sklearn_predicts_on_the_smoothed_targets():
    rng = np.random.default_rng(0)
    p = rng.random(2000).astype(np.float32)
    y = rng.random(2000) < p ** 2
    fitted = fit_isotonic(p, y)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(
        p.astype(np.float64), platt_targets(y))
    negatives = int((~y).sum())
    assert min(fitted.y) >= 1 / (negatives + 2) - 1e-12  # never exactly 0
    grid = np.linspace(-0.1, 1.1, 1001).astype(np.float32)
    mine = Calibration("isotonic", {"v": fitted}, (), 0).apply("v", grid)
    assert np.abs(mine - reference.predict(grid.astype(np.float64))).max() < 1e-6


def test_one_distinct_score_gives_a_constant_isotonic_map():
    fitted = fit_isotonic(np.full(10, 0.3, np.float32), np.arange(10) < 4)
    out = Calibration("isotonic", {"v": fitted}, (), 0).apply("v", np.array([0.0, 0.3, 1.0]))
    assert np.allclose(out, (4 * 5 / 6 + 6 * 1 / 8) / 10)  # the mean smoothed target


def test_platt_on_two_score_values_hits_their_smoothed_rates_exactly():
    # Two scores, 0.2 (2 positives of 10) and 0.6 (6 of 10): with two parameters the fit
    # reproduces each group's mean smoothed target, so slope and intercept follow by hand.
    p = np.repeat(np.float32([0.2, 0.6]), 10)
    y = np.concatenate([np.arange(10) < 2, np.arange(10) < 6])
    positive, negative = 9 / 10, 1 / 14  # Platt's targets: (8 + 1) / (8 + 2), 1 / (12 + 2)
    rate = [(2 * positive + 8 * negative) / 10, (6 * positive + 4 * negative) / 10]
    z = logit(np.float64([np.float32(0.2), np.float32(0.6)]))
    slope = (logit(rate[1]) - logit(rate[0])) / (z[1] - z[0])
    fitted = fit_platt(p, y)
    assert fitted.slope == pytest.approx(slope, rel=1e-7)
    assert fitted.intercept == pytest.approx(logit(rate[0]) - slope * z[0], rel=1e-6)


def test_platt_targets_are_the_smoothed_ones():
    expected = [3 / 4, 1 / 5, 1 / 5, 3 / 4, 1 / 5]  # 2 positives, 3 negatives
    assert np.allclose(platt_targets(np.array([1, 0, 0, 1, 0])), expected)


def test_temperature_on_one_score_value_hits_its_smoothed_rate_exactly():
    # One score 0.8 with 7 positives of 10: sigmoid(logit(0.8) / T) = the mean smoothed target
    p = np.full(10, 0.8, np.float32)
    y = np.arange(10) < 7
    rate = (7 * 8 / 9 + 3 * 1 / 5) / 10
    fitted = fit_temperature(p, y)
    assert fitted.temperature == pytest.approx(logit(np.float64(np.float32(0.8))) / logit(rate),
                                               rel=1e-7)


def test_temperature_cannot_lower_scores_above_one_half_that_are_mostly_negative():
    with pytest.raises(DataError, match="no intercept"):
        fit_temperature(np.full(10, 0.7, np.float32), np.arange(10) < 2)


def test_temperature_undoes_a_known_sharpening():
    rng = np.random.default_rng(1)
    z = rng.normal(-2, 1.5, 200_000)
    y = rng.random(len(z)) < sigmoid(z)
    overconfident = sigmoid(2.5 * z).astype(np.float32)
    assert fit_temperature(overconfident, y).temperature == pytest.approx(2.5, rel=0.02)
    platt = fit_platt(overconfident, y)
    assert platt.slope == pytest.approx(1 / 2.5, rel=0.02)
    assert platt.intercept == pytest.approx(0, abs=0.03)


def test_scores_ranked_backwards_get_a_flat_platt_map_and_no_temperature():
    p = np.float32([0.1, 0.2, 0.8, 0.9])
    y = np.array([1, 1, 0, 0], bool)
    fitted = fit_platt(p, y)
    assert fitted.slope == 0 and sigmoid(fitted.intercept) == pytest.approx(0.5)
    with pytest.raises(DataError, match="wrong side of 0.5"):
        fit_temperature(p, y)


def miscalibrated(rows=40_000, seed=2, shift=True) -> tuple[Predictions, Predictions]:
    """(fit days, evaluation days): a model whose scores are too sharp (logit × 1.6) and,
    with `shift`, shifted up (+2.5 on the logit), on two draws of the same population."""
    rng = np.random.default_rng(seed)
    out = []
    for day in ("d1", "d2"):
        truth = sigmoid(rng.normal(-3, 1, rows))
        label = (rng.random(rows) < truth).astype(np.float32)
        score = sigmoid(1.6 * logit(truth) + (2.5 if shift else 0.0)).astype(np.float32)
        out.append(Predictions(views=("last",), labels=("last",), probs=score[:, None],
                               weights=label[:, None], user=np.arange(rows) % 500,
                               days=(day,), day_rows=(rows,)))
    return out[0], out[1]


# Temperature scaling has no intercept: it undoes over-confidence, not a shift.
@pytest.mark.parametrize("method,shift", [("isotonic", True), ("platt", True),
                                          ("temperature", False)])
def test_calibration_lowers_logloss_and_ece_of_a_miscalibrated_model_on_other_rows(method,
                                                                                   shift):
    fit_on, evaluated = miscalibrated(shift=shift)
    calibration = fit_calibration(fit_on, method)
    assert calibration.days == ("d1",) and calibration.rows == 40_000
    before, after = calibration_effect(evaluated, calibration)
    label = evaluated.weights[:, 0]
    calibrated = calibration.apply("last", evaluated.probs[:, 0])
    assert after["last"].logloss == pytest.approx(logloss(calibrated, label))
    assert after["last"].ece == pytest.approx(expected_calibration_error(calibrated, label))
    assert after["last"].logloss < before["last"].logloss - 0.01
    assert after["last"].ece < before["last"].ece / 3
    assert abs(after["last"].pcoc - 1) < 0.1 < abs(before["last"].pcoc - 1)
    assert after["last"].auc == pytest.approx(before["last"].auc, abs=0.01)  # ranking kept
    table = format_calibration_effect(before, after, calibration, "last", evaluated.days)
    assert f"{before['last'].logloss:.4f}" in table and f"{after['last'].ece:.5f}" in table
    assert "in-sample" not in table
    assert "in-sample" in format_calibration_effect(before, after, calibration, "last", ("d1",))


def test_a_view_without_positives_cannot_be_calibrated():
    fit_on, _ = miscalibrated(rows=100)
    fit_on.weights[:] = 0
    with pytest.raises(DataError, match="no positive"):
        fit_calibration(fit_on, "isotonic")


def test_temperature_refuses_scores_that_rank_nothing():
    # One score for a positive and a negative: the best temperature is infinite (all to 0.5).
    with pytest.raises(DataError, match="temperature scaling cannot calibrate"):
        fit_temperature(np.full(2, 0.09846470504999161, np.float32), np.array([True, False]))


@settings(max_examples=40, deadline=None)
@given(method=st.sampled_from(["isotonic", "platt", "temperature"]),
       rows=st.lists(st.tuples(st.floats(0, 1, width=32), st.booleans()), min_size=2,
                     max_size=60),
       probes=st.lists(st.floats(0, 1, width=32), min_size=1, max_size=60))
def test_every_fitted_map_is_monotone_in_the_score_and_within_the_unit_interval(method, rows,
                                                                                probes):
    p = np.array([r[0] for r in rows], dtype=np.float32)
    y = np.array([r[1] for r in rows])
    if y.all() or not y.any():
        y[0] = not y[0]
    fits = {"isotonic": fit_isotonic, "platt": fit_platt, "temperature": fit_temperature}
    try:
        fitted = fits[method](p, y)
    except DataError:  # temperature scaling refuses scores ranked backwards
        assert method == "temperature"
        return
    grid = np.sort(np.concatenate([np.array(probes, np.float32), p, [0, 1]]).astype(np.float32))
    out = Calibration(method, {"v": fitted}, (), 0).apply("v", grid)
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1


def two_campaign_kinds(rows=20_000, seed=3) -> Predictions:
    """Rows of three target actions: action 0 over-predicted (logit + 1.5), action 1
    under-predicted (logit − 1.5), action 2 too rare for a calibrator of its own."""
    rng = np.random.default_rng(seed)
    action = rng.choice(3, rows, p=[0.5, 0.495, 0.005])
    truth = sigmoid(rng.normal(-2, 1, rows))
    label = (rng.random(rows) < truth).astype(np.float32)
    score = sigmoid(logit(truth) + np.where(action == 0, 1.5, -1.5)).astype(np.float32)
    return Predictions(views=("a",), labels=("a", "b", "c"), probs=score[:, None],
                       weights=np.stack([label, label, label], 1), user=np.arange(rows),
                       target_action=action, days=("d",), day_rows=(rows,))


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_per_target_action_calibrators_fix_each_action_and_pool_the_rare_ones(method):
    predictions = two_campaign_kinds()
    sliced = fit_calibration(predictions, method, by="target_action")
    assert sliced.by == "target_action" and sliced.labels == ("a", "b", "c")
    assert set(sliced.slices["a"]) == {"a", "b"}  # "c" has too few rows: pooled
    action, score = predictions.target_action, predictions.probs[:, 0]
    out = sliced.apply("a", score, action)
    for index, name in enumerate("ab"):
        rows = action == index
        own = Calibration(method, {"a": sliced.slices["a"][name]}, (), 0)
        assert np.allclose(out[rows], own.apply("a", score[rows]), rtol=0, atol=1e-7)
    pooled = Calibration(method, sliced.views, (), 0)
    assert np.allclose(out[action == 2], pooled.apply("a", score[action == 2]), rtol=0,
                       atol=1e-7)
    # keys with no calibrator of their own (-1: another action; beyond the labels) are pooled
    keys = np.array([-1, 7, 0])
    assert np.allclose(sliced.apply("a", score[:3], keys)[:2], pooled.apply("a", score[:2]),
                       rtol=0, atol=1e-7)
    label = predictions.weights[:, 0]
    for rows in (action == 0, action == 1):  # each action calibrated on its own
        assert abs(out[rows].sum() / label[rows].sum() - 1) < 0.05
        assert abs(pooled.apply("a", score[rows]).sum() / label[rows].sum() - 1) > 0.3
    _, after_pooled = calibration_effect(predictions, pooled)
    _, after_sliced = calibration_effect(predictions, sliced)
    assert after_sliced["a"].logloss < after_pooled["a"].logloss


def test_slicing_needs_the_target_action_and_the_rows_need_theirs():
    predictions = two_campaign_kinds(rows=500)
    sliced = fit_calibration(predictions, "platt", by="target_action")
    with pytest.raises(ConfigError, match="sliced by target_action"):
        sliced.apply("a", predictions.probs[:, 0])
    predictions.target_action = None
    with pytest.raises(ConfigError, match="target-action column"):
        fit_calibration(predictions, "platt", by="target_action")
