"""`malt eval --day`: a run scored on a training day of its data (the next day of a daily run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from malt.cli import main
from malt.eval.report import evaluate
from malt.eval.rescore import rescore
from malt.runs.directory import RunDir
from support.mac_data import write_random_dataset

RUN_FLAGS = ["--seed", "3", "--batch-size", "64", "--model", "base",
             "--model-option", "encoder.embed_dim=4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, RunDir]:
    """Three training days of different sizes and a test day; a run trained on the first."""
    root = tmp_path_factory.mktemp("next-day")
    data = write_random_dataset(root / "data", days=4, rows=150)
    out = root / "run"
    assert main(["train", "--data", str(data), "--train-days", "1", "--out", str(out),
                 *RUN_FLAGS]) == 0
    return data, RunDir(out)


@pytest.mark.parametrize("day", ["train-01", "1"])
def test_a_day_by_name_or_index_scores_that_days_rows(trained, day):
    data, run = trained
    predictions = rescore(run, data, day=day)
    assert predictions.days == ("train-01",)
    labels = pq.read_table(data / "train" / "train-01.parquet", columns=["last"]).column(0)
    # The rows are scored in the day's order, its labels carried along.
    assert np.array_equal(predictions.label_weights("last"),
                          labels.to_numpy().astype(np.float32))


def test_another_day_gives_other_scores_than_the_runs_test_day(trained):
    data, run = trained
    next_day, test_day = rescore(run, data, day="train-01"), rescore(run, data)
    assert test_day.days == ("test",)
    assert not np.array_equal(next_day.probs, test_day.probs)


def test_eval_prints_the_scores_of_that_day_on_the_runs_own_data(trained, capsys):
    data, run = trained
    expected = evaluate(rescore(run, data, day="train-02"))["last"]
    capsys.readouterr()
    assert main(["eval", "--run", str(run.path), "--day", "train-02"]) == 0  # --data: the run's
    out = capsys.readouterr().out
    assert f"{expected.auc:.4f}" in out and "scored on train-02 of " in out
    assert "the GAUC of 'last' counts only" in out  # not "test": the day is a training day


def test_a_day_the_data_does_not_have_is_refused_naming_the_flag(trained, capsys):
    _, run = trained
    assert main(["eval", "--run", str(run.path), "--day", "train-09"]) == 3
    err = capsys.readouterr().err
    assert "--day = 'train-09'" in err and "train-00" in err
