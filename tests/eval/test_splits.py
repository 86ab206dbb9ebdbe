"""Evaluation splits say what they are: several test days are reported per day and pooled, the
validation protocol holds out the last k training days, and a GAUC too thin to choose on is
warned about."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from malt.cli import main
from malt.data import prepare
from malt.errors import ConfigError, DataError
from malt.eval.predictions import Predictions
from malt.eval.report import few_users_warning
from malt.jobs.train import train_run
from malt.metrics import ViewMetrics, view_metrics
from malt.runs.config import DataConfig, RunConfig
from malt.training.builder import evaluation_days, split_days
from support.mac_data import write_random_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three training days and two test days of 200 rows."""
    return write_random_dataset(tmp_path_factory.mktemp("splits") / "d", days=5, rows=200,
                                test_days=2)


def _config(data, **data_options) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 3, "data": {"path": str(data), **data_options},
        "task": {"main": "last", "aux": ["first"]}, "train": {"batch_size": 64},
        "model": {"name": "mmoe", "encoder": {"embed_dim": 4, "attention_heads": 1},
                  "expert": {"dim": 8}, "tower": {"dims": [4]}}})


def test_the_validation_protocol_holds_out_the_last_k_training_days(data):
    dataset = prepare(data)
    names = [d.name for d in dataset.train]
    for k in (1, 2):
        train, held = split_days(dataset, DataConfig(eval_split="validation",
                                                     validation_days=k))
        assert [d.name for d in train] == names[:-k] and [d.name for d in held] == names[-k:]
    with pytest.raises(ConfigError, match="data.validation_days = 3: the validation protocol "
                                          "needs at least 4 training days, and .* has 3"):
        split_days(dataset, DataConfig(eval_split="validation", validation_days=3))
    with pytest.raises(ConfigError, match="data.validation_days = 0: expected an integer >= 1"):
        RunConfig.from_dict({"data": {"validation_days": 0}})


def test_the_days_asked_for_must_be_in_the_data(data, tmp_path):
    dataset = prepare(data)
    train, _ = split_days(dataset, DataConfig(train_days=3))
    assert [d.name for d in train] == [d.name for d in dataset.train]
    with pytest.raises(ConfigError, match=r"data.train_days = 4, but .* has 3 training days "
                                          r"\(train/\*.parquet\): pass at most 3"):
        split_days(dataset, DataConfig(train_days=4))
    test_only = write_random_dataset(tmp_path / "test-only", days=3, rows=50)
    for day in (test_only / "train").iterdir():
        day.unlink()
    dataset = prepare(test_only)
    with pytest.raises(DataError, match="has no training day"):
        split_days(dataset, DataConfig())
    # Scoring a finished run on such a data set needs only its test days.
    assert evaluation_days(dataset, DataConfig(train_days=5)) == dataset.test


def test_the_first_training_day_is_named_or_counted(data):
    dataset = prepare(data)
    names = [d.name for d in dataset.train]  # train-00, train-01, train-02
    for first in ("train-01", "1"):
        train, _ = split_days(dataset, DataConfig(train_from=first))
        assert [d.name for d in train] == names[1:]
        train, _ = split_days(dataset, DataConfig(train_from=first, train_days=1))
        assert [d.name for d in train] == names[1:2]
    with pytest.raises(ConfigError, match=r"data.train_days = 3, but .* has 2 training days "
                                          r"from day 1 \(train-01\) on"):
        split_days(dataset, DataConfig(train_from="train-01", train_days=3))
    for bad in ("3", "2026-12-06", "-1"):
        with pytest.raises(ConfigError, match=f"data.train_from = '{bad}' is neither the name "
                                              "of a training day of .* nor an index below 3"):
            split_days(dataset, DataConfig(train_from=bad))
    train, held = split_days(dataset, DataConfig(train_from="1", eval_split="validation"))
    assert ([d.name for d in train], [d.name for d in held]) == (names[1:2], names[2:])


def test_several_test_days_are_reported_per_day_and_pooled(data, tmp_path, capsys):
    metrics = train_run(_config(data), tmp_path / "run")
    predictions = Predictions.load(tmp_path / "run" / "predictions.npz")
    assert predictions.days == ("test-00", "test-01") and predictions.day_rows == (200, 200)
    assert list(metrics.per_day) == ["test-00", "test-01"] and metrics.eval_rows == 400
    for day, rows in (("test-00", slice(0, 200)), ("test-01", slice(200, 400))):
        want = view_metrics(predictions.view("last")[rows],
                            predictions.label_weights("last")[rows], predictions.user[rows])
        assert metrics.per_day[day]["last"] == want
    pooled = view_metrics(predictions.view("last"), predictions.label_weights("last"),
                          predictions.user)
    assert metrics.views["last"] == pooled != metrics.per_day["test-00"]["last"]
    assert main(["eval", "--run", str(tmp_path / "run")]) == 0
    table = capsys.readouterr().out.split("main view 'last' by day:\n")[1].splitlines()[:4]
    assert [line.split()[0] for line in table] == ["day", "test-00", "test-01", "pooled"]
    assert table[3].split()[1:3] == [f"{pooled.auc:.4f}", f"{pooled.gauc:.4f}"]
    assert table[3].split()[4] == f"{pooled.pcoc:.3f}"


def test_a_thin_validation_gauc_is_warned_about(data, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="malt"):
        metrics = train_run(_config(data, eval_split="validation"), tmp_path / "val")
    users = metrics.main_metrics.gauc_users
    assert 0 < users < 500 and metrics.per_day == {}
    assert [r.getMessage() for r in caplog.records if "validation GAUC" in r.getMessage()] == [
        f"the validation GAUC counts only {users} users (fewer than 500): choices made on it "
        "are mostly noise; hold out more days (--validation-days) or use more data"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="malt"):
        tested = train_run(_config(data), tmp_path / "test")
    assert not [r for r in caplog.records if "validation GAUC" in r.getMessage()]
    days = {day: views["last"].gauc_users for day, views in tested.per_day.items()}
    pooled = tested.main_metrics.gauc_users
    expected = (f"the test GAUC of 'last' counts fewer than 500 users on test-00 "
                f"({days['test-00']}), test-01 ({days['test-01']}), pooled ({pooled}): a "
                "difference between models or settings on it is mostly noise; evaluate on "
                "more test days or more data")
    assert [r.getMessage() for r in caplog.records if "test GAUC" in r.getMessage()] == [expected]


def test_malt_eval_warns_about_a_thin_test_gauc(data, tmp_path, capsys):
    train_run(_config(data), tmp_path / "run")
    assert main(["eval", "--run", str(tmp_path / "run")]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("warning:")]
    assert line.startswith("warning: the test GAUC of 'last' counts fewer than 500 users on "
                           "test-00 (")


def _views(users: int) -> dict[str, ViewMetrics]:
    return {"last": ViewMetrics(auc=0.7, gauc=0.6, gauc_users=users, logloss=0.3,
                                auc_weighted=0.7, gauc_weighted=0.6)}


def test_the_few_users_warning_names_only_the_thin_sets_at_the_validation_threshold():
    assert few_users_warning(_views(500), {}, "last") is None
    assert few_users_warning(_views(499), {}, "last") == (
        "the test GAUC of 'last' counts only 499 users (fewer than 500): a difference between "
        "models or settings on it is mostly noise; evaluate on more test days or more data")
    per_day = {"d1": _views(44), "d2": _views(900)}
    assert "fewer than 500 users on d1 (44): a" in few_users_warning(_views(940), per_day, "last")
    assert few_users_warning(_views(499), per_day, "last", split="validation").startswith(
        "the validation GAUC counts only 499 users")
    assert few_users_warning(_views(500), {}, "last", split="validation") is None


def test_predictions_saved_before_days_were_kept_still_load(tmp_path):
    old = Predictions(views=("last",), labels=("last",), probs=np.zeros((2, 1), np.float32),
                      weights=np.zeros((2, 1), np.float32), user=np.arange(2))
    old.save(tmp_path / "p.npz")
    loaded = Predictions.load(tmp_path / "p.npz")
    assert loaded.days == () and loaded.by_day() == []
