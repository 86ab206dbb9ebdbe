"""Gains by slice: the slicings, the per-slice comparison, reading a column of the data, and
`malt eval --baseline` on data without the path-complexity labels."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyarrow as pa
import pytest

from malt.bootstrap import PairedDelta, paired_bootstrap
from malt.cli import main
from malt.data.layout import write_day
from malt.errors import ConfigError, DataError
from malt.eval.predictions import Predictions
from malt.eval.slices import (
    MIN_USERS,
    SliceGain,
    activity_slices,
    bucket_names,
    column_slices,
    complexity_slices,
    format_slices,
    pool_small,
    slice_gains,
    slice_gains_over_seeds,
)
from malt.metrics import DEFAULT_COMPLEXITY_EDGES, gauc, path_complexity
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.record import ParamCounts, RunMetrics, TrainStats


def test_activity_slices_bucket_users_by_their_clicks():
    user = np.array([7] * 1 + [3] * 3 + [9] * 20 + [5] * 8)
    slices = activity_slices(user)
    assert list(slices[[0, 1, 4, 24]]) == ["[1, 2) clicks", "[2, 4) clicks", "≥ 16 clicks",
                                          "[8, 16) clicks"]


def test_complexity_slices_follow_the_per_user_path_complexity():
    rng = np.random.default_rng(0)
    user = rng.integers(0, 50, 600)
    last = (rng.random(600) < 0.15).astype(float)
    linear = np.maximum(last, rng.random(600) < 0.2)
    slices = complexity_slices(user, linear, last)
    ids = np.unique(user)
    ratio = path_complexity(ids, user, linear, last)
    names = ["[1, 1.5)", "[1.5, 2)", "[2, 3)", "[3, 5)", "≥ 5"]
    for u, r in zip(ids, ratio):
        expected = "" if np.isnan(r) else names[np.searchsorted(DEFAULT_COMPLEXITY_EDGES, r,
                                                                side="right") - 1]
        assert set(slices[user == u]) == {expected}


def test_pool_small_keeps_the_largest_slices():
    slices = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"])
    assert list(pool_small(slices, keep=2)) == ["a"] * 5 + ["b"] * 3 + ["other"] * 3
    assert list(pool_small(slices, keep=4)) == list(slices)


def day_predictions(noise: float, seed: int, rows: int = 3000, users: int = 300,
                    labels: tuple[str, ...] = ("last",)) -> Predictions:
    rng = np.random.default_rng(0)
    user = rng.integers(0, users, rows)
    latent = rng.normal(0, 1, users)[user] + rng.normal(0, 1, rows)
    converted = (rng.random(rows) < 1 / (1 + np.exp(-(latent - 1)))).astype(np.float32)
    noisy = latent - 1 + np.random.default_rng(seed).normal(0, noise, rows)
    probs = (1 / (1 + np.exp(-noisy))).astype(np.float32)[:, None]
    return Predictions(views=("last",), labels=labels, probs=probs,
                       weights=np.repeat(converted[:, None], len(labels), 1), user=user,
                       days=("test",), day_rows=(rows,))


def test_each_slice_compares_its_own_rows():
    run, base = day_predictions(0.3, 1), day_predictions(1.5, 2)
    slices = np.where(run.user < 100, "young", np.where(run.user < 290, "old", "rare"))
    gains = slice_gains(run, base, "last", slices, resamples=100)
    assert [g.name for g in gains] == ["old", "young", "rare"]  # largest first
    young = gains[1]
    rows = slices == "young"
    labels = run.label_weights("last")[rows] > 0
    expected = gauc(run.view("last")[rows], labels, run.user[rows])
    assert young.rows == rows.sum() and young.gauc_run == pytest.approx(expected.value)
    assert young.deltas["gauc"].estimate == pytest.approx(
        expected.value - gauc(base.view("last")[rows], labels, run.user[rows]).value)
    assert young.has_interval and not gains[2].has_interval  # 10 users
    text = format_slices(gains, "age")
    assert f"no interval under {MIN_USERS} users" in text
    rare = next(line for line in text.splitlines() if line.startswith("rare"))
    assert "[" not in rare


def test_slice_gains_over_seeds_pool_each_seed_with_its_own_baseline():
    runs = [day_predictions(0.3, 1), day_predictions(0.6, 3)]
    bases = [day_predictions(1.5, 2), day_predictions(0.9, 4)]
    slices = np.where(runs[0].user < 150, "young", "old")
    pooled = slice_gains_over_seeds(runs, bases, "last", slices, resamples=200)
    alone = [slice_gains(r, b, "last", slices, resamples=200) for r, b in zip(runs, bases)]
    for i, gain in enumerate(pooled):
        per_seed = [gains[i] for gains in alone]
        assert gain.gauc_run == pytest.approx(np.mean([g.gauc_run for g in per_seed]))
        assert gain.gauc_baseline == pytest.approx(np.mean([g.gauc_baseline for g in per_seed]))
        assert gain.deltas["gauc"].estimate == pytest.approx(
            np.mean([g.deltas["gauc"].estimate for g in per_seed]))
        delta = gain.deltas["gauc"]
        assert delta.low < delta.estimate < delta.high


def test_slices_of_empty_name_are_left_out_and_buckets_keep_their_order():
    run, base = day_predictions(0.3, 1), day_predictions(1.5, 2)
    low, middle, high = bucket_names((2, 16, 32))
    slices = np.where(run.user < 100, high, np.where(run.user < 200, middle,
                                                      np.where(run.user < 300, low, "")))
    assert sorted([low, middle, high]) != [low, middle, high]  # "[16, ..." sorts before "[2, ..."
    gains = slice_gains(run, base, "last", slices, resamples=50, order=[low, middle, high])
    assert [g.name for g in gains] == [low, middle, high]


def write_data(root, column: dict[str, list]) -> None:
    write_day(root / "test" / "test.parquet", pa.table(column))
    (root / "train").mkdir()


def test_a_column_is_read_from_the_days_the_run_was_scored_on(tmp_path):
    run = day_predictions(1.0, 0, rows=6, users=3)
    write_data(tmp_path, {"industry": ["a", "b", "a", "c", "c", "a"], "x": list(range(6))})
    assert list(column_slices(tmp_path, run, "industry")) == ["a", "b", "a", "c", "c", "a"]
    with pytest.raises(DataError, match="no column 'brand'"):
        column_slices(tmp_path, run, "brand")
    other = day_predictions(1.0, 0, rows=5, users=3)
    with pytest.raises(DataError, match="not the data the run was evaluated on"):
        column_slices(tmp_path, other, "industry")
    renamed = Predictions(**{**run.__dict__, "days": ("day-9",)})
    with pytest.raises(ConfigError, match="no day 'day-9'"):
        column_slices(tmp_path, renamed, "industry")


def write_run(path, predictions: Predictions, data) -> str:
    run = RunDir(path)
    path.mkdir()
    run.save_config(RunConfig.from_dict({"data": {"path": str(data)}, "task": {"main": "last"},
                                         "model": {"name": "base"}}))
    predictions.save(run.predictions_file)
    from malt.eval.report import evaluate

    run.save_metrics(RunMetrics(main="last", views=evaluate(predictions), eval_days=("test",),
                                eval_rows=len(predictions.user),
                                train=TrainStats(days=1, rows=1, steps=1, seconds=1.0,
                                                 world_size=1),
                                params=ParamCounts(dense=1, embedding=1)))
    return str(path)


def test_eval_against_a_baseline_on_data_without_linear_labels(tmp_path, capsys):
    labels = ("last", "first")
    data = tmp_path / "data"
    data.mkdir()
    run = day_predictions(0.3, 1, labels=labels)
    write_data(data, {"segment": np.where(run.user < 150, "new", "known").tolist()})
    moae = write_run(tmp_path / "moae", run, data)
    base = write_run(tmp_path / "base", day_predictions(1.5, 2, labels=labels), data)
    code = main(["eval", "--run", moae, "--baseline", base, "--by", "segment", "--by",
                 "activity", "--resamples", "100"])
    out = capsys.readouterr().out
    assert code == 0
    assert "verdict: better" in out
    assert "no path-complexity breakdown: the data has no ['linear'] label(s)" in out
    assert "on 'last' by segment:" in out and "on 'last' by user clicks:" in out
    segment = out[out.index("by segment:"):]
    assert [line.split()[0] for line in segment.splitlines()[2:4]] == ["known", "new"]


def test_eval_slices_by_the_labels_named_for_path_complexity(tmp_path, capsys):
    labels = ("last", "multi")
    run = day_predictions(0.3, 1, labels=labels)
    run.weights[:, 1] = np.maximum(run.weights[:, 1], np.random.default_rng(0).random(3000) < .3)
    base = Predictions(**{**day_predictions(1.5, 2, labels=labels).__dict__,
                          "weights": run.weights})
    moae = write_run(tmp_path / "moae", run, tmp_path)
    baseline = write_run(tmp_path / "base", base, tmp_path)
    assert main(["eval", "--run", moae, "--baseline", baseline, "--complexity-labels",
                 "multi,last", "--resamples", "50"]) == 0
    assert "on 'last' by multi/last:" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--by", "segment"], "give --baseline"),
    (["--baseline", "x", "--complexity-labels", "linear"], "takes two labels"),
])
def test_eval_refuses_slices_it_cannot_make(tmp_path, capsys, argv, message):
    assert main(["eval", "--run", str(tmp_path), *argv]) == 3
    assert message in capsys.readouterr().err


def test_complexity_slices_leave_out_users_without_a_single_touch_positive_quietly():
    # user 1: 2 multi over 1 single; user 2: multi but no single (x / 0); user 3: neither (0 / 0)
    user = np.array([1, 1, 2, 2, 3])
    multi = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    single = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        slices = complexity_slices(user, multi, single)
    assert list(slices) == ["[2, 3)", "[2, 3)", "", "", ""]


def test_a_column_slice_error_names_the_file_and_the_columns(tmp_path):
    run = day_predictions(1.0, 0, rows=6, users=3)
    write_data(tmp_path, {"x": list(range(6)), "industry": ["a", "b", "a", "c", "c", "a"]})
    day = str(tmp_path / "test" / "test.parquet")
    # The sliced column is not the first: only it is read.
    assert list(column_slices(tmp_path, run, "industry")) == ["a", "b", "a", "c", "c", "a"]
    with pytest.raises(DataError) as missing:
        column_slices(tmp_path, run, "brand")
    assert missing.value.file == day
    assert str(missing.value) == (f"file {day}: no column 'brand' to slice by; its columns: "
                                  "x, industry")
    other = day_predictions(1.0, 0, rows=5, users=3)
    with pytest.raises(DataError) as short:
        column_slices(tmp_path, other, "industry")
    assert str(short.value) == (f"file {day}: 6 rows where the run scored 5: not the data the "
                                "run was evaluated on")
    undated = Predictions(**{**run.__dict__, "days": ()})
    with pytest.raises(ConfigError) as old:
        column_slices(tmp_path, undated, "industry")
    assert str(old.value) == ("these predictions do not name their days (saved by an older malt); "
                              "recompute them with malt eval --run RUN --data DIR")


def test_pool_small_breaks_ties_in_size_by_name():
    rng = np.random.default_rng(3)
    names = np.array([f"s{i:02d}" for i in range(60)])
    counts = rng.integers(1, 3, 60)
    slices = np.repeat(names, counts)
    kept = set(np.unique(pool_small(slices, keep=20))) - {"other"}
    # All slices of 2 rows in name order, then those of 1 row in name order, up to 20.
    expected = [n for n, c in zip(names, counts) if c == 2] + [n for n, c in zip(names, counts)
                                                                if c == 1]
    assert kept == set(expected[:20])


def test_slices_without_an_order_come_largest_first_other_last_and_empty_left_out():
    run, base = day_predictions(0.3, 1), day_predictions(1.5, 2)
    slices = np.where(run.user < 200, "other", np.where(run.user < 250, "b",
                                                         np.where(run.user < 280, "a", "")))
    gains = slice_gains(run, base, "last", slices, resamples=20, seed=5)
    assert [g.name for g in gains] == ["b", "a", "other"]
    rows = slices == "a"
    labels = (run.label_weights("last")[rows] > 0).astype(float)
    expected = paired_bootstrap([run.view("last")[rows]], [base.view("last")[rows]], labels,
                                run.user[rows], metrics=("auc", "gauc"), resamples=20, seed=5)
    assert gains[1].deltas == expected
    default_seed = slice_gains(run, base, "last", slices, resamples=20)
    assert default_seed[1].deltas == paired_bootstrap(
        [run.view("last")[rows]], [base.view("last")[rows]], labels, run.user[rows],
        metrics=("auc", "gauc"), resamples=20, seed=0)
    assert default_seed[1].deltas != expected


def _delta(estimate: float, low: float, high: float, metric: str = "gauc") -> PairedDelta:
    return PairedDelta(metric=metric, estimate=estimate, low=low, high=high, p_value=0.5,
                       level=0.95, resamples=10, users=30, seeds=1)


def test_format_slices_lines():
    gains = [
        SliceGain("young", 1234, 30, 0.71234, 0.70011,
                  {"gauc": _delta(0.0123, 0.004, 0.02), "auc": _delta(-0.001, -0.01, 0.008)}),
        SliceGain("rare-and-long", 5, 3, 0.6, math.nan,
                  {"gauc": _delta(0.0251, 0.01, 0.03), "auc": _delta(math.nan, 0, 0)}),
    ]
    lines = format_slices(gains, "age").splitlines()
    # Names padded to the longest plus 2; trailing blanks cut; no interval under 20 users.
    assert lines[0] == ("age                  rows    users  GAUC run  GAUC base  "
                        "ΔGAUC (pt) [95%]        ΔAUC (pt) [95%]")
    assert lines[1] == ("young               1,234       30    0.7123     0.7001  "
                        "+1.23 [+0.40, +2.00]†   -0.10 [-1.00, +0.80]")
    assert lines[2] == ("rare-and-long           5        3    0.6000          –  "
                        "+2.51                   –")
    assert lines[3] == ("Δ = run − baseline in points, 95 % paired bootstrap interval over the "
                        "slice's users; † where it excludes 0; no interval under 20 users; – "
                        "where the slice's labels leave the metric undefined.")
    assert len(lines) == 4
