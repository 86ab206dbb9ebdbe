"""Calibration in the evaluation report: PCOC and ECE columns, and a reliability diagram of every
evaluated view written into the run directory."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from malt.eval.calibration_plot import reliability_figure
from malt.eval.predictions import Predictions
from malt.eval.report import format_days, format_metrics
from malt.jobs.train import train_run
from malt.metrics import ViewMetrics, expected_calibration_error, pcoc, reliability_bins
from malt.outputs import read_manifest
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _config(data) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 5, "data": {"path": str(data)},
        "task": {"main": "last", "aux": ["first", "cat"]}, "train": {"batch_size": 128},
        "model": {"name": "mmoe", "encoder": {"embed_dim": 4, "attention_heads": 1},
                  "expert": {"dim": 8}, "tower": {"dims": [4]}}})


def test_a_trained_run_records_calibration_and_a_diagram_per_evaluated_view(random_mac,
                                                                             tmp_path):
    from matplotlib.image import imread

    out = tmp_path / "run"
    metrics = train_run(_config(random_mac), out)
    run = RunDir(out)
    predictions = Predictions.load(run.predictions_file)
    saved = json.loads(run.metrics_file.read_text())
    assert set(metrics.views) == {"last", "first"}  # `cat` is trained, never evaluated
    manifest = read_manifest(out)
    for view in metrics.views:
        probs = predictions.view(view)
        labels = (predictions.label_weights(view) > 0).astype(np.float64)
        assert saved["views"][view]["pcoc"] == pytest.approx(pcoc(probs, labels), rel=1e-12)
        assert saved["views"][view]["ece"] == pytest.approx(
            expected_calibration_error(probs, labels), rel=1e-12)
        assert math.isfinite(saved["views"][view]["pcoc"])
        plot = run.reliability_plot(view)
        assert plot == out / f"reliability-{view}.png"
        assert plot.read_bytes().startswith(PNG_SIGNATURE)
        assert imread(plot).shape[2] == 4  # decodes as an RGBA image
        assert manifest.lists(plot.name)
    assert sorted(p.name for p in out.glob("reliability-*")) == \
        ["reliability-first.png", "reliability-last.png"]
    assert not any(p.name.startswith(".") for p in out.iterdir() if p.name != ".malt-manifest.json")


def test_the_diagram_plots_each_bin_on_log_axes_with_pcoc_and_ece_in_the_title():
    rng = np.random.default_rng(0)
    probs = rng.beta(0.5, 30.0, 4000)
    labels = (rng.random(4000) < probs).astype(np.float64)
    order = np.argsort(probs)
    labels[order[np.arange(2, 20) * 200]] = 1.0  # a positive in each bin of 200 rows but
    labels[order[:400]] = 0.0  # the two lowest
    fig = reliability_figure(probs, labels, "last", bins=20)
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    title = ax.get_title()
    assert title.startswith(f"last: PCOC {pcoc(probs, labels):.3f}, "
                            f"ECE {expected_calibration_error(probs, labels):.5f}")
    assert "4,000 rows in 20 equal-count bins" in title
    lines = {line.get_label(): line for line in ax.get_lines()}
    curve = reliability_bins(probs, labels, 20)
    filled = curve.observed_rate > 0
    assert filled.sum() == 18
    np.testing.assert_allclose(lines["bin"].get_xdata(), curve.mean_predicted[filled])
    np.testing.assert_allclose(lines["bin"].get_ydata(), curve.observed_rate[filled])
    floor = ax.get_ylim()[0]
    np.testing.assert_allclose(lines["bin without positives"].get_ydata(), [floor, floor])
    np.testing.assert_allclose(lines["bin without positives"].get_xdata(),
                               curve.mean_predicted[:2])
    diagonal = lines["calibrated"]
    np.testing.assert_array_equal(diagonal.get_xdata(), diagonal.get_ydata())
    assert 0 < floor < curve.mean_predicted.min() and ax.get_xlim() == ax.get_ylim()


def _view(auc, pcoc_value=math.nan, ece=math.nan) -> ViewMetrics:
    return ViewMetrics(auc=auc, gauc=auc - 0.05, gauc_users=1234, logloss=0.3,
                       auc_weighted=auc + 0.01, gauc_weighted=auc - 0.04, pcoc=pcoc_value,
                       ece=ece)


def test_the_metrics_table_shows_pcoc_and_ece_per_view():
    table = format_metrics({"first": _view(0.6, 0.876, 0.01234), "last": _view(0.7, 1.234,
                                                                                 0.00056)},
                           "last").splitlines()
    assert table[0].split() == ["view", "AUC", "GAUC", "AUC(w)", "GAUC(w)", "logloss", "PCOC",
                                "ECE", "users"]
    assert table[1].split() == ["last*", "0.7000", "0.6500", "0.7100", "0.6600", "0.3000",
                                "1.234", "0.00056", "1,234"]
    assert table[2].split()[6:8] == ["0.876", "0.01234"]
    assert "PCOC: predicted / observed positives" in table[4]
    assert "20 equal-count bins" in table[4]
    # Metrics saved before calibration was reported show it as unknown.
    old = format_metrics({"last": _view(0.7)}, "last").splitlines()[1].split()
    assert old[6:8] == ["nan", "nan"]


def test_the_days_table_shows_pcoc():
    per_day = {"test-00": {"last": _view(0.7, 0.9)}, "test-01": {"last": _view(0.7, 1.1)}}
    table = format_days(per_day, {"last": _view(0.7, 1.0)}, "last").splitlines()
    assert table[1].split() == ["day", "AUC", "GAUC", "logloss", "PCOC", "users"]
    assert [line.split()[4] for line in table[2:]] == ["0.900", "1.100", "1.000"]
