"""`malt study delay` end to end through the CLI on a tiny simulation with long-tail delays,
and the plan of its days."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from malt.cli import main
from malt.data.cache import prepare
from malt.data.schema import MAC
from malt.errors import ConfigError
from malt.experiments.delay import METHODS, plan_delay

WINDOW_DAYS = 2.0
DAY = 86400.0


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from malt.sources.simulate import simulate, size_config

    out = tmp_path_factory.mktemp("delay") / "data"
    simulate(size_config("tiny", seed=3, users=300, purchase_delay="long-tail"), out)
    return out


@pytest.fixture(scope="module")
def study(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("delay-study") / "out"
    assert main(["study", "delay", "--preset", "smoke", "--data", str(data), "--out", str(out),
                 "--models", "base", "--seeds", "2", "--delay-window-days", str(WINDOW_DAYS),
                 "--jobs", "1", "--device", "cpu"]) == 0
    return out


def _newest_clicks(data: Path) -> list[float]:
    return [float(np.max(day.arrays()["click_time"])) for day in prepare(data, MAC).train]


@pytest.mark.slow
def test_every_method_trains_as_of_the_last_click_and_wait_on_the_matured_days(data, study):
    newest = _newest_clicks(data)
    as_of = max(newest)
    matured = sum(t <= as_of - WINDOW_DAYS * DAY for t in newest)
    assert 0 < matured < len(newest)
    configs = [json.loads(p.read_text()) for p in (study / "runs").glob("*/config.json")]
    assert len(configs) == len(METHODS) * 2
    corrections = sorted((c["data"]["train_days"], c["task"]["delay_correction"])
                         for c in configs)
    assert corrections == sorted([(matured, "none")] * 2 + [(len(newest), "none")] * 2 + [
        (len(newest), m) for m in ("fnw", "fnc", "dfm") for _ in range(2)])
    assert {float(c["data"]["as_of"]) for c in configs} == {as_of}
    table = pd.read_csv(study / "delay.csv").set_index("model · method")
    assert list(table.index) == [f"base · {m}" for m in METHODS]
    assert table.loc["base · wait", "newest"] == pytest.approx(
        (as_of - newest[matured - 1]) / 3600, abs=0.5)
    assert table.loc["base · naive", "newest"] == 0
    for metric in ("auc", "gauc", "logloss", "pcoc"):
        for column in (metric, f"{metric}_truth"):
            assert table[column].notna().all() and (table[f"{column}_n"] == 2).all()
    assert (table[["auc", "gauc", "auc_truth", "gauc_truth"]] > 0.3).all().all()


@pytest.mark.slow
@pytest.mark.parametrize("name, rows", [
    ("delay-vs-wait", [f"base · {m} − wait" for m in METHODS[1:]]),
    ("delay-vs-naive", [f"base · {m} − naive" for m in METHODS[2:]])])
@pytest.mark.slow
def test_each_comparison_has_an_interval_around_its_mean(study, name, rows):
    table = pd.read_csv(study / f"{name}.csv").set_index("model · method")
    assert list(table.index) == rows
    for metric in ("auc", "gauc", "logloss", "pcoc"):
        for column in (metric, f"{metric}_truth"):
            low, mean, high = table[f"{column}_low"], table[column], table[f"{column}_high"]
            assert ((low <= mean) & (mean <= high) & (low < high)).all(), column


@pytest.mark.slow
def test_the_mean_differences_are_those_of_the_metrics_table(study):
    metrics = pd.read_csv(study / "delay.csv").set_index("model · method")
    versus = pd.read_csv(study / "delay-vs-wait.csv").set_index("model · method")
    for method in METHODS[1:]:
        for column in ("auc", "logloss_truth", "pcoc"):
            assert versus.loc[f"base · {method} − wait", column] == pytest.approx(
                metrics.loc[f"base · {method}", column] - metrics.loc["base · wait", column])


@pytest.mark.slow
def test_the_recovered_share_is_the_correction_over_the_gap(study):
    versus_wait = pd.read_csv(study / "delay-vs-wait.csv").set_index("model · method")
    versus_naive = pd.read_csv(study / "delay-vs-naive.csv").set_index("model · method")
    shares = pd.read_csv(study / "delay-recovered.csv").set_index("model · method")
    gap = versus_wait.loc["base · naive − wait", "logloss_truth"]
    gain = versus_naive.loc["base · dfm − naive", "logloss_truth"]
    assert shares.loc["base · dfm", "logloss_truth"] == pytest.approx(-gain / gap)
    assert "pcoc" not in shares.columns
    markdown = (study / "delay.md").read_text()
    assert "**Next-day metrics of each delay method**" in markdown
    assert "Positives known at T: linear" in markdown


def test_a_window_that_leaves_no_day_matured_is_refused(data):
    dataset = prepare(data, MAC)
    with pytest.raises(ConfigError, match="none of the 5 training days is matured"):
        plan_delay(dataset, window_days=30)
    assert plan_delay(dataset, window_days=1e-9).matured == 4  # the last day holds T
    plan = plan_delay(dataset, WINDOW_DAYS)
    assert plan.train_days("wait") == plan.matured and plan.train_days("fnw") == plan.days == 5


def test_data_without_arrival_times_is_refused_before_any_run(tmp_path, capsys):
    from malt.sources.simulate import simulate, size_config

    data = tmp_path / "data"
    simulate(size_config("tiny", seed=4, users=200), data)
    # Session delays still write known-at and click times: drop them to get release-like days.
    import pyarrow.parquet as pq

    for path in (data / "train").glob("*.parquet"):
        table = pq.read_table(path)
        keep = [c for c in table.column_names
                if not c.endswith("_known_at") and c != MAC.click_time]
        pq.write_table(table.select(keep), path)
    out = tmp_path / "out"
    assert main(["study", "delay", "--preset", "smoke", "--data", str(data), "--out", str(out),
                 "--models", "base", "--delay-window-days", "1"]) == 3
    assert "known-at" in capsys.readouterr().err
    assert not (out / "runs").exists()


def test_the_delay_study_runs_apart_and_simulates_long_tail_delays(tmp_path):
    from malt.experiments.engine import open_study, protocols, study_out
    from malt.experiments.options import StudyOptions

    assert "delay" not in [p.name for p in protocols(("all",))]
    with pytest.raises(ConfigError, match="run the delay study apart"):
        protocols(("main", "delay"))
    options = StudyOptions(names=("delay",), preset="smoke")
    assert study_out(options, "delay").as_posix() == "studies/delay-smoke"
    study = open_study(replace(options, out=tmp_path / "d"), "delay", say=lambda line: None)
    arrays = [day.arrays() for day in study.prepared().train]
    delays = np.concatenate([(a["known_at"][:, MAC.labels.index("linear")] - a["click_time"])
                             for a in arrays])
    delays = delays[np.isfinite(delays)]
    # Long-tail delays defer over half of the purchases by days; session ones come in minutes.
    assert np.mean(delays > DAY) > 0.2
    assert "long-tail delay `tiny` set" in study.notes()[0]
