"""Predictions of impression logs: clicks and pCTR saved and sliced, the views scored on the
clicks, and the entire-space scores against scikit-learn and the truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from malt.errors import ConfigError
from malt.eval.calibrate import calibrated, fit_calibration
from malt.eval.compare import compare
from malt.eval.impressions import format_impressions, impression_metrics
from malt.eval.predictions import Predictions
from malt.eval.report import evaluate
from malt.eval.truth import Truth, score_against_truth


def impression_predictions(rows: int = 400, seed: int = 0, *, ctr: bool = True) -> Predictions:
    rng = np.random.default_rng(seed)
    click = (rng.random(rows) < 0.3).astype(np.float32)
    weights = np.where((rng.random((rows, 2)) < 0.3) & (click[:, None] > 0),
                       rng.uniform(0.2, 1, (rows, 2)), 0).astype(np.float32)
    return Predictions(views=("last", "first"), labels=("last", "first"),
                       probs=rng.random((rows, 2)).astype(np.float32), weights=weights,
                       user=rng.integers(0, 20, rows), days=("d0", "d1"),
                       day_rows=(rows // 2, rows - rows // 2), click=click,
                       ctr=rng.random(rows).astype(np.float32) if ctr else None)


def test_clicks_and_ctr_round_trip_and_slice_by_day(tmp_path):
    p = impression_predictions()
    p.save(tmp_path / "p.npz")
    loaded = Predictions.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(loaded.click, p.click)
    np.testing.assert_array_equal(loaded.ctr, p.ctr)
    (_, first), (_, second) = loaded.by_day()
    np.testing.assert_array_equal(np.concatenate([first.ctr, second.ctr]), p.ctr)
    np.testing.assert_array_equal(second.click, p.click[200:])
    # Predictions of click data stay as they were saved.
    plain = Predictions(views=p.views, labels=p.labels, probs=p.probs, weights=p.weights,
                        user=p.user)
    plain.save(tmp_path / "q.npz")
    assert Predictions.load(tmp_path / "q.npz").click is None


def test_a_ctr_without_clicks_or_of_other_rows_is_damage(tmp_path):
    p = impression_predictions()
    np.savez(tmp_path / "bad.npz", views=np.array(p.views), labels=np.array(p.labels),
             probs=p.probs, weights=p.weights, user=p.user, ctr=p.ctr)
    with pytest.raises(ConfigError, match="damaged"):
        Predictions.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", views=np.array(p.views), labels=np.array(p.labels),
             probs=p.probs, weights=p.weights, user=p.user, click=p.click[:-1])
    with pytest.raises(ConfigError, match="damaged"):
        Predictions.load(tmp_path / "short.npz")


def test_views_are_scored_on_the_clicked_rows():
    p = impression_predictions()
    clicked = p.click > 0
    metrics = evaluate(p)
    for j, view in enumerate(p.views):
        expected = roc_auc_score(p.weights[clicked, j] > 0, p.probs[clicked, j])
        assert metrics[view].auc == pytest.approx(expected)
        assert metrics[view].auc != pytest.approx(roc_auc_score(p.weights[:, j] > 0,
                                                                p.probs[:, j]))


def test_entire_space_scores_match_scikit_learn_and_the_truth():
    p = impression_predictions()
    truth = Truth(probability=np.random.default_rng(1).random(len(p.user)), credit=None)
    metrics = impression_metrics(p, truth)
    clicked = p.click > 0
    for j, view in enumerate(p.views):
        m = metrics[view]
        assert m["clicked"] == pytest.approx(clicked.mean())
        assert m["ctr_auc"] == pytest.approx(roc_auc_score(clicked, p.ctr))
        assert m["ctcvr_auc"] == pytest.approx(roc_auc_score(p.weights[:, j] > 0,
                                                             p.ctr * p.probs[:, j]))
        for name, rows in (("clicks", clicked), ("unclicked", ~clicked)):
            against = score_against_truth(p.probs[rows, j], truth.probability[rows],
                                          p.weights[rows, j] > 0, p.user[rows])
            assert m[f"{name}_calibration"] == pytest.approx(against["calibration"])
            assert m[f"{name}_logloss"] == pytest.approx(against["logloss"])
    assert "last*" in format_impressions(metrics, "last")


def test_click_space_predictions_have_no_ctr_scores_and_click_data_none():
    p = impression_predictions(ctr=False)
    metrics = impression_metrics(p)
    assert set(metrics["last"]) == {"clicked"}
    assert "-" in format_impressions(metrics, "last")
    plain = Predictions(views=p.views, labels=p.labels, probs=p.probs, weights=p.weights,
                        user=p.user)
    assert impression_metrics(plain) is None
    assert plain.clicked() is plain


def test_calibrators_are_fitted_on_the_clicks_and_keep_them():
    p = impression_predictions(2000)
    # Unclicked rows have no conversion: fitted on them, a calibrator would pull scores down.
    everything = dataclasses.replace(p, click=None, ctr=None)
    on_clicks = fit_calibration(p, "platt")
    np.testing.assert_allclose(
        on_clicks.apply_all(p.views, p.probs, None),
        fit_calibration(p.clicked(), "platt").apply_all(p.views, p.probs, None))
    assert (on_clicks.apply_all(p.views, p.probs, None).mean()
            > fit_calibration(everything, "platt").apply_all(p.views, p.probs, None).mean())
    after = calibrated(p, on_clicks)
    np.testing.assert_array_equal(after.click, p.click)
    np.testing.assert_array_equal(after.ctr, p.ctr)


def test_runs_are_compared_on_their_clicks_and_only_on_the_same_ones():
    a, b = impression_predictions(600, 0), impression_predictions(600, 0, ctr=False)
    b = dataclasses.replace(b, probs=np.random.default_rng(5).random(b.probs.shape)
                            .astype(np.float32))
    comparison = compare([a], [b], "last", metrics=("auc",), resamples=50)
    clicked = a.click > 0
    expected = (roc_auc_score(a.weights[clicked, 0] > 0, a.probs[clicked, 0])
                - roc_auc_score(a.weights[clicked, 0] > 0, b.probs[clicked, 0]))
    assert comparison.deltas["auc"].estimate == pytest.approx(expected)
    assert comparison.rows == clicked.sum()
    other_clicks = dataclasses.replace(b, click=1 - b.click)
    with pytest.raises(ConfigError, match="evaluated on other rows"):
        compare([a], [other_clicks], "last", metrics=("auc",), resamples=50)
