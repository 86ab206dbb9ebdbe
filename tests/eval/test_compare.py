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


def test_each_side_needs_a_run():
    with pytest.raises(ConfigError, match="^compare needs at least one run on each side$"):
        compare([], [predictions(1.0, 0)], "last", resamples=10)
    with pytest.raises(ConfigError, match="^compare needs at least one run on each side$"):
        compare([predictions(1.0, 0)], [], "last", resamples=10)


def test_runs_with_the_same_users_but_other_labels_are_refused():
    run = predictions(1.0, 0)
    relabelled = Predictions(**{**run.__dict__, "weights": 1 - run.weights})
    with pytest.raises(ConfigError, match="^the runs were evaluated on other rows; score them "
                                          r"on the same data \(malt eval --data DIR\) before "
                                          "comparing$"):
        compare([run], [relabelled], "last", resamples=10)


def test_notes_say_how_the_runs_were_paired():
    two = compare([predictions(1.0, s) for s in range(2)], [predictions(1.1, s) for s in range(2)],
                  "last", resamples=10)
    assert two.note == ""
    one = compare([predictions(1.0, 0)], [predictions(1.1, 0)], "last", resamples=10)
    assert one.note == "one seed: the interval covers the test rows, not the training randomness"
    shared = compare([predictions(1.0, s) for s in range(2)], [predictions(1.1, 0)], "last",
                     resamples=10)
    assert shared.note == "one baseline run paired with every candidate run"


def test_the_level_and_the_draw_seed_reach_the_bootstrap():
    runs, base = [predictions(0.8, 0)], [predictions(1.0, 0)]
    wide = compare(runs, base, "last", metrics=["gauc"], resamples=300).deltas["gauc"]
    narrow = compare(runs, base, "last", metrics=["gauc"], resamples=300,
                     level=0.5).deltas["gauc"]
    assert narrow.level == 0.5 and narrow.high - narrow.low < 0.6 * (wide.high - wide.low)
    assert wide == compare(runs, base, "last", metrics=["gauc"], resamples=300,
                           seed=0).deltas["gauc"]
    assert wide != compare(runs, base, "last", metrics=["gauc"], resamples=300,
                           seed=1).deltas["gauc"]


def test_the_whole_table_as_printed():
    from malt.eval.compare import Comparison

    deltas = {"auc": PairedDelta("auc", 0.0308, 0.0135, 0.0474, 0.002, 0.95, 1000, 1467, 1),
              "gauc": PairedDelta("gauc", 0.0202, -0.0027, 0.0404, 0.084, 0.95, 1000, 1467, 1),
              "logloss": PairedDelta("logloss", -0.0096, -0.0109, -0.0083, 0.002, 0.95, 1000,
                                     1467, 1)}
    text = format_comparison(Comparison("last", deltas, 7992, "a note"), "moae", "base")
    assert text == "\n".join([
        "moae − base on 'last' (7,992 rows, 1,467 users, 1 seed(s), 1,000 resamples):",
        "metric      Δ (pt)  95% interval              p  call",
        "AUC          +3.08  [+1.35, +4.74]        0.002  better",
        "GAUC         +2.02  [-0.27, +4.04]        0.084  –",
        "logloss      -0.96  [-1.09, -0.83]        0.002  better",
        "verdict: better on AUC and logloss; no detectable difference on GAUC (the metrics "
        "disagree)",
        "note: a note",
        "Δ = run − baseline; lower logloss is better; intervals from a paired bootstrap over "
        "users"])
    seeds = {k: PairedDelta(k, -0.01, -0.02, -0.005, 0.002, 0.9, 500, 10, 2) for k in ("auc",)}
    assert format_comparison(Comparison("last", seeds, 10), "a", "b").splitlines()[1:3] == [
        "metric      Δ (pt)  90% interval              p  call",
        "AUC          -1.00  [-2.00, -0.50]        0.002  worse"]
    assert format_comparison(Comparison("last", seeds, 10), "a", "b").endswith(
        "over users and seeds")
    assert format_comparison(Comparison("last", seeds, 10)).startswith("run − baseline on")
