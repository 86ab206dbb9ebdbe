"""`malt rolling`: a three-day period through the command line on tiny random data, and the
plan of its runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from malt.cli import main
from malt.errors import ConfigError
from malt.eval.report import evaluate
from malt.eval.rescore import rescore
from malt.experiments.rolling import plan
from malt.experiments.rolling_options import RollingOptions
from malt.runs.config import InitConfig, RunConfig
from malt.runs.directory import RunDir
from support.mac_data import T0, add_known_at, write_random_dataset

DAYS = ["train-00", "train-01", "train-02", "train-03"]
RUN_FLAGS = ["--seed", "7", "--batch-size", "64", "--warmup-fraction", "0", "--model", "base",
             "--model-option", "encoder.embed_dim=4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Four training days (train-00 ... train-03) and a test day."""
    return write_random_dataset(tmp_path_factory.mktemp("rolling") / "data", days=5, rows=160)


def _rolling(data: Path, out: Path, *flags: str) -> int:
    return main(["rolling", "--data", str(data), "--start", "0", "--days", "3",
                 "--out", str(out), *RUN_FLAGS, *flags])


@pytest.fixture(scope="module")
def rolled(data, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("rolled") / "out"
    assert _rolling(data, out) == 0
    return out, pd.read_csv(out / "rolling.csv")


def _run(table: pd.DataFrame, day: str, chain: str) -> RunDir:
    row = table[(table["day"] == day) & (table["chain"] == chain)]
    assert len(row) == 1
    return RunDir(Path(row["run"].item()))


def test_the_table_has_a_row_per_day_and_chain_scored_on_the_next_day(rolled):
    out, table = rolled
    assert list(zip(table["day"], table["chain"], table["scored_day"])) == [
        (day, chain, DAYS[i + 1]) for i, day in enumerate(DAYS[:3])
        for chain in ("warm", "scratch")]
    assert table[["auc", "gauc", "logloss", "pcoc", "ece"]].notna().all().all()
    assert (table["train_seconds"] > 0).all()
    markdown = (out / "rolling.md").read_text()
    assert "| train-02 · scratch | train-03 |" in markdown and "(rolling.png)" in markdown
    assert (out / "rolling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_warm_chain_trains_one_day_from_its_parent(rolled):
    _, table = rolled
    runs = [_run(table, day, "warm") for day in DAYS[:3]]
    assert runs[0].load_parent() is None
    assert runs[2].lineage() == [runs[1].path.resolve(), runs[0].path.resolve()]
    for day, run in zip(DAYS[1:3], runs[1:]):
        config = run.load_config()
        assert (config.data.train_from, config.data.train_days) == (day, 2)  # + the scored day
        assert run.load_metrics().train.days == 1
    assert list(table[table["chain"] == "warm"]["train_rows"]) == [160, 160, 160]


def test_the_scratch_chain_trains_on_every_day_so_far(rolled):
    _, table = rolled
    scratch = table[table["chain"] == "scratch"]
    assert list(scratch["train_days"]) == [1, 2, 3]
    assert list(scratch["train_rows"]) == [160, 320, 480]
    for day in DAYS[1:3]:
        run = _run(table, day, "scratch")
        assert run.load_parent() is None
        assert run.load_config().data.train_from == "train-00"
    # The first day's model is the same run in both chains: trained once.
    assert _run(table, DAYS[0], "scratch").path == _run(table, DAYS[0], "warm").path


def test_the_scores_are_those_of_malt_eval_on_the_next_day(rolled, data, capsys):
    _, table = rolled
    for _, row in table.iterrows():
        predictions = rescore(RunDir(Path(row["run"])), data)  # what malt eval --data scores
        assert predictions.days == (row["scored_day"],)
        main_view = evaluate(predictions)["last"]
        assert (main_view.auc, main_view.gauc, main_view.logloss, main_view.pcoc) == \
            pytest.approx((row["auc"], row["gauc"], row["logloss"], row["pcoc"]), abs=1e-12)
    assert main(["eval", "--run", row["run"], "--data", str(data)]) == 0
    assert f"{row['auc']:.4f}" in capsys.readouterr().out


def test_the_same_command_again_reuses_every_finished_run(rolled, data, monkeypatch):
    out, table = rolled

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("malt.jobs.train.train_run", no_training)
    assert _rolling(data, out) == 0
    assert pd.read_csv(out / "rolling.csv").equals(table)


def test_a_longer_period_trains_only_its_new_runs(data, tmp_path, monkeypatch):
    import malt.jobs.train

    out = tmp_path / "out"
    assert main(["rolling", "--data", str(data), "--start", "0", "--days", "2", "--out", str(out),
                 "--mode", "warm", *RUN_FLAGS]) == 0
    trained = []
    real = malt.jobs.train.train_run

    def counted(config, path, **kwargs):
        trained.append(Path(path).relative_to(out).parts[:2])
        return real(config, path, **kwargs)

    monkeypatch.setattr("malt.jobs.train.train_run", counted)
    assert _rolling(data, out) == 0
    # The warm chain's two days are reused (its first run is the scratch chain's first too).
    assert trained == [("scratch", "train-01"), ("warm", "train-02"), ("scratch", "train-02")]
    assert len(pd.read_csv(out / "rolling.csv")) == 6


def test_the_same_seed_gives_the_same_scores(rolled, data, tmp_path):
    _, table = rolled
    assert _rolling(data, tmp_path / "again", "--mode", "scratch") == 0
    again = pd.read_csv(tmp_path / "again" / "rolling.csv")
    scores = ["day", "auc", "gauc", "logloss", "pcoc", "ece", "train_rows"]
    first = table[table["chain"] == "scratch"][scores].reset_index(drop=True)
    assert again[scores].equals(first)


def _base(data: Path, **data_options) -> RunConfig:
    return RunConfig.from_dict({"seed": 7, "data": {"path": str(data), **data_options},
                                "model": {"name": "base"}})


def test_the_plan_names_each_warm_runs_parent_and_the_scratch_days(tmp_path):
    options = RollingOptions(out=str(tmp_path), start="train-01", days=2, warm_optimiser=True,
                             warm_min_count=3, warm_numeric="refit")
    (warm1, scratch1), (warm2, scratch2) = plan(_base(tmp_path), DAYS, options, tmp_path)
    assert warm1.config == scratch1.config and warm1.config.init == InitConfig()
    assert warm2.config.init == InitConfig(from_run=str(warm1.directory(tmp_path).resolve()),
                                           optimiser=True, numeric="refit", min_count=3)
    assert [(r.config.data.train_from, r.config.data.train_days, r.scored)
            for r in (warm1, warm2, scratch2)] == [
        ("train-00", 3, "train-02"), ("train-02", 2, "train-03"), ("train-00", 4, "train-03")]
    assert {r.config.data.eval_split for r in (warm1, warm2, scratch2)} == {"validation"}


@pytest.mark.parametrize("start, days, refused", [
    ("train-01", 3, "pass at most --days 2"),
    ("train-09", 1, "neither the name of a training day"),
])
def test_a_period_without_a_next_day_is_refused(tmp_path, start, days, refused):
    options = RollingOptions(out=str(tmp_path), start=start, days=days)
    with pytest.raises(ConfigError, match=refused):
        plan(_base(tmp_path), DAYS, options, tmp_path)


def test_days_chosen_in_the_config_are_refused(data, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[data]\ntrain_days = 2\n")
    assert _rolling(data, tmp_path / "out", "--config", str(config)) == 3
    assert "leave out data.train_days" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_as_of_the_end_of_each_day_cuts_each_runs_labels(tmp_path):
    options = RollingOptions(out=str(tmp_path), start="1", days=2, as_of_origin=str(T0))
    runs = [run for today in plan(_base(tmp_path), DAYS, options, tmp_path) for run in today]
    day_ends = [T0 + 2 * 86400, T0 + 2 * 86400, T0 + 3 * 86400, T0 + 3 * 86400]
    assert [float(r.config.data.as_of) for r in runs] == day_ends
    with pytest.raises(ConfigError, match="--as-of-origin"):
        plan(_base(tmp_path), DAYS, RollingOptions(out=str(tmp_path), start="1",
                                                   as_of_origin="yesterday"), tmp_path)


def test_a_warm_chain_as_of_each_day_trains_on_the_labels_known_then(tmp_path):
    data = write_random_dataset(tmp_path / "data", days=4, rows=120, seed=2)
    add_known_at(data)  # every credit known within 4 days of T0
    out = tmp_path / "out"
    assert main(["rolling", "--data", str(data), "--start", "0", "--days", "2", "--out", str(out),
                 "--mode", "warm", "--as-of-origin", str(T0 - 86400), *RUN_FLAGS]) == 0
    table = pd.read_csv(out / "rolling.csv")
    runs = [_run(table, day, "warm") for day in DAYS[:2]]
    assert [float(r.load_config().data.as_of) for r in runs] == [T0, T0 + 86400]
    assert runs[1].lineage() == [runs[0].path.resolve()]


def test_as_of_on_data_without_arrival_times_is_refused_before_any_run(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert _rolling(data, out, "--as-of-origin", "0") == 3
    assert "needs the labels' known-at columns" in capsys.readouterr().err
    assert not out.exists()
