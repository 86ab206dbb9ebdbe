"""Comparing runs: pairing by seed, the same rows required, the verdict, `malt compare`."""

from __future__ import annotations

import numpy as np
import pytest

from malt.bootstrap import PairedDelta
from malt.cli import main
from malt.errors import ConfigError
from malt.eval.compare import NO_DIFFERENCE, compare, format_comparison, verdict
from malt.eval.predictions import Predictions


def predictions(noise: float, seed: int, *, rows: int = 6000, users: int = 800,
                data_seed: int = 0) -> Predictions:
    """A model's predictions on one synthetic day (the day is fixed by `data_seed`, the
    model's noise by `seed`)."""
    rng = np.random.default_rng(data_seed)
    user = rng.integers(0, users, rows)
    latent = rng.normal(0, 1, users)[user] + rng.normal(0, 1, rows)
    converted = rng.random(rows) < 1 / (1 + np.exp(-(latent - 2)))
    noisy = latent - 2 + np.random.default_rng(seed + 1).normal(0, noise, rows)
    probs = (1 / (1 + np.exp(-noisy))).astype(np.float32)[:, None]
    return Predictions(views=("last",), labels=("last",), probs=probs,
                       weights=converted.astype(np.float32)[:, None], user=user,
                       days=("test",), day_rows=(rows,))


def test_a_better_model_is_called_better_on_every_metric():
    result = compare([predictions(0.3, s) for s in range(3)],
                     [predictions(1.5, s) for s in range(3)], "last", resamples=200)
    assert result.verdict == "better"
    assert result.note == ""
    assert all(d.seeds == 3 and d.resamples == 200 for d in result.deltas.values())


def test_one_seed_says_what_its_interval_covers():
    result = compare([predictions(0.3, 0)], [predictions(1.5, 0)], "last", resamples=100)
    assert "one seed" in result.note


def test_one_baseline_pairs_with_every_candidate_run():
    result = compare([predictions(1.0, s) for s in range(2)], [predictions(1.0, 9)], "last",
                     resamples=100)
    assert result.deltas["gauc"].seeds == 2
    assert "one baseline run" in result.note


@pytest.mark.parametrize("other, message", [
    (predictions(1.0, 0, data_seed=1), "other rows"),
    (predictions(1.0, 0, rows=5000), "other rows"),
])
def test_runs_scored_on_other_rows_are_refused(other, message):
    with pytest.raises(ConfigError, match=message):
        compare([predictions(1.0, 0)], [other], "last", resamples=10)


def test_unpaired_seed_counts_and_unknown_views_are_refused():
    runs = [predictions(1.0, s) for s in range(3)]
    with pytest.raises(ConfigError, match="3 candidate run"):
        compare(runs, runs[:2], "last", resamples=10)
    with pytest.raises(ConfigError, match="no 'first' head"):
        compare(runs[:1], runs[:1], "first", resamples=10)


def delta(metric: str, estimate: float, low: float, high: float) -> PairedDelta:
    return PairedDelta(metric, estimate, low, high, 0.5, 0.95, 100, 10, 1)


def test_the_verdict_names_the_metrics_when_they_disagree():
    assert verdict({"auc": delta("auc", 0.01, 0.005, 0.02),
                    "gauc": delta("gauc", 0.01, 0.001, 0.02)}) == "better"
    assert verdict({"auc": delta("auc", 0.0, -0.01, 0.01),
                    "logloss": delta("logloss", 0.0, -0.01, 0.01)}) == NO_DIFFERENCE
    mixed = verdict({"auc": delta("auc", 0.006, 0.002, 0.01),
                     "gauc": delta("gauc", -0.03, -0.04, -0.02),
                     "logloss": delta("logloss", 0.0, -0.01, 0.01)})
    assert mixed == ("better on AUC; worse on GAUC; no detectable difference on logloss "
                     "(the metrics disagree)")
    grouped = verdict({"auc": delta("auc", 0.006, 0.002, 0.01),
                       "gauc": delta("gauc", 0.0, -0.04, 0.02),
                       "logloss": delta("logloss", 0.0, -0.01, 0.01)})
    assert grouped == ("better on AUC; no detectable difference on GAUC and logloss "
                       "(the metrics disagree)")
    # Lower logloss is better.
    assert verdict({"logloss": delta("logloss", -0.01, -0.02, -0.005)}) == "better"


def test_the_table_shows_each_difference_in_points_with_its_interval():
    text = format_comparison(compare([predictions(0.3, 0)], [predictions(1.5, 0)], "last",
                                     resamples=100), "moae", "base")
    auc = compare([predictions(0.3, 0)], [predictions(1.5, 0)], "last", resamples=100,
                  metrics=["auc"]).deltas["auc"]
    row = next(line for line in text.splitlines() if line.startswith("AUC "))
    assert f"{100 * auc.estimate:+.2f}" in row and f"[{100 * auc.low:+.2f}, " in row
    assert row.endswith("better")
    assert "moae − base on 'last'" in text and "verdict: better" in text


def write_run(path, prediction: Predictions):
    path.mkdir()
    prediction.save(path / "predictions.npz")
    return str(path)


def test_malt_compare_prints_the_paired_differences(tmp_path, capsys):
    runs = [write_run(tmp_path / f"moae-{s}", predictions(0.3, s)) for s in range(2)]
    base = [write_run(tmp_path / f"base-{s}", predictions(1.5, s)) for s in range(2)]
    code = main(["compare", *runs, "--baseline", *base, "--view", "last", "--metrics",
                 "gauc,auc", "--resamples", "200", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "2 seed(s), 200 resamples" in out and "verdict: better" in out
    assert [line.split()[0] for line in out.splitlines()[2:4]] == ["GAUC", "AUC"]


def test_malt_compare_refuses_a_level_outside_0_1(tmp_path, capsys):
    run = write_run(tmp_path / "run", predictions(1.0, 0))
    assert main(["compare", run, "--baseline", run, "--view", "last", "--level", "1"]) == 3
    assert "--level" in capsys.readouterr().err


def test_the_api_compares_run_directories(tmp_path):
    import malt

    runs = [write_run(tmp_path / f"moae-{s}", predictions(0.3, s)) for s in range(2)]
    base = [write_run(tmp_path / f"base-{s}", predictions(1.5, s)) for s in range(2)]
    result = malt.compare(runs, base, view="last", metrics=("gauc",), resamples=100)
    assert result.verdict == "better" and result.deltas["gauc"].seeds == 2
