"""`malt simulate --impressions`, then `malt train --entire-space` and a click-space run on it,
then `malt eval`, `predict` and `export` of the entire-space runs (MMoE, and MoAE, whose own
loss terms the wrapper keeps)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from malt.cli import main
from malt.eval.predictions import Predictions

TRAIN = ["train", "--model", "mmoe", "--main", "linear", "--aux", "last", "--batch-size", "128",
         "--device", "cpu", "--seed", "1"]


@pytest.fixture(scope="module")
def impressions(tmp_path_factory):
    data = tmp_path_factory.mktemp("entire") / "sim"
    assert main(["simulate", "--size", "tiny", "--users", "250", "--days", "3", "--seed", "2",
                 "--impressions", "--out", str(data)]) == 0
    return data


@pytest.fixture(scope="module")
def runs(impressions, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main([*TRAIN, "--data", str(impressions), "--entire-space",
                 "--out", str(root / "entire")]) == 0
    assert main([*TRAIN, "--data", str(impressions), "--out", str(root / "clicks")]) == 0
    return root / "entire", root / "clicks"


def test_an_entire_space_run_records_its_click_rate_and_entire_space_scores(runs):
    entire, clicks = runs
    metrics = json.loads((entire / "metrics.json").read_text())
    scores = metrics["impressions"]["linear"]
    assert 0.05 < scores["clicked"] < 0.5
    assert {"ctr_auc", "ctcvr_auc", "ctcvr_gauc", "clicks_calibration",
            "unclicked_calibration"} <= set(scores)
    predictions = Predictions.load(entire / "predictions.npz")
    assert predictions.ctr is not None and ((predictions.ctr > 0) & (predictions.ctr < 1)).all()
    assert 0 < predictions.click.mean() < 1
    # The views' metrics are those of the clicked rows.
    clicked = predictions.click > 0
    assert metrics["views"]["linear"]["auc"] == pytest.approx(roc_auc_score(
        predictions.label_weights("linear")[clicked] > 0, predictions.view("linear")[clicked]))
    # A click-space run on the same data has no click head, and its loss leaves out the
    # unclicked rows; it is scored on the same rows.
    plain = json.loads((clicks / "metrics.json").read_text())
    assert "ctr_auc" not in plain["impressions"]["linear"]
    assert np.array_equal(Predictions.load(clicks / "predictions.npz").click, predictions.click)
    assert json.loads((entire / "config.json").read_text())["task"]["entire_space"] is True


@pytest.fixture(scope="module")
def moae_run(impressions, tmp_path_factory):
    out = tmp_path_factory.mktemp("moae") / "entire"
    flags = [*TRAIN, "--model", "moae", "--data", str(impressions), "--entire-space"]
    assert main([*flags, "--out", str(out)]) == 0
    return out


@pytest.fixture(params=["mmoe", "moae"])
def entire(request, runs, moae_run):
    return runs[0] if request.param == "mmoe" else moae_run


def test_a_moae_run_trains_over_the_impressions(moae_run, runs):
    config = json.loads((moae_run / "config.json").read_text())
    assert config["model"]["name"] == "moae" and config["task"]["entire_space"] is True
    scores = json.loads((moae_run / "metrics.json").read_text())["impressions"]["linear"]
    assert 0 <= scores["ctr_auc"] <= 1 and 0 <= scores["ctcvr_auc"] <= 1
    predictions = Predictions.load(moae_run / "predictions.npz")
    assert predictions.ctr is not None
    # Scored on the same impressions as the MMoE run.
    assert np.array_equal(predictions.click, Predictions.load(runs[0] / "predictions.npz").click)


def test_eval_predict_and_export_serve_the_conversion_rates(entire, impressions, tmp_path,
                                                            capsys):
    capsys.readouterr()
    assert main(["eval", "--run", str(entire)]) == 0
    assert "CTCVR AUC" in capsys.readouterr().out
    out = tmp_path / "p.parquet"
    assert main(["predict", "--run", str(entire), "--data", str(impressions / "test"),
                 "--out", str(out), "--device", "cpu"]) == 0
    scored = pd.read_parquet(out)
    predictions = Predictions.load(entire / "predictions.npz")
    np.testing.assert_allclose(scored["p_linear"], predictions.view("linear"), atol=1e-6)
    assert main(["export", "--run", str(entire), "--out", str(tmp_path / "m.pt"),
                 "--format", "torchscript"]) == 0
    assert "outputs: p_linear" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--entire-space", "--aux", "cat"], "the Cartesian view 'cat' has no such product"),
    (["--entire-space", "--model", "kaml"], "model 'kaml' has a loss and a forward pass"),
    (["--entire-space", "--model", "taml"], "model 'taml' has a loss of its own"),
])
def test_bad_entire_space_runs_are_refused_before_writing(impressions, tmp_path, capsys,
                                                          flags, message):
    out = tmp_path / "run"
    assert main([*TRAIN, "--data", str(impressions), *flags, "--out", str(out)]) == 3
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_entire_space_on_click_data_is_refused(tmp_path, capsys):
    data = tmp_path / "clicks"
    assert main(["simulate", "--size", "tiny", "--users", "60", "--days", "2", "--out",
                 str(data)]) == 0
    assert main([*TRAIN, "--data", str(data), "--entire-space", "--out",
                 str(tmp_path / "run")]) == 3
    assert "needs impression logs" in capsys.readouterr().err


def test_an_entire_space_run_does_not_warm_start_from_a_click_space_one(runs, impressions,
                                                                        tmp_path, capsys):
    _, clicks = runs
    out = tmp_path / "warm"
    assert main([*TRAIN, "--data", str(impressions), "--entire-space", "--init-from",
                 str(clicks), "--out", str(out)]) != 0
    assert "task.entire_space: True here, False in the parent" in capsys.readouterr().err
    assert not out.exists()
