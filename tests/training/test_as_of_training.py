"""Training as of a time: the trainer reads the labels known then; evaluation keeps the
matured ones."""

from __future__ import annotations

import numpy as np
import pytest

from malt.cli import main
from malt.eval.predictions import Predictions
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from support.mac_data import T0, add_known_at, write_random_dataset


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    root = write_random_dataset(tmp_path_factory.mktemp("as-of") / "data", days=3, rows=256)
    add_known_at(root)
    return root


def config(data, as_of: float | None) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 3, "data": {"path": str(data), "as_of": None if as_of is None else str(as_of)},
        "task": {"main": "last", "aux": ["first"]}, "train": {"batch_size": 64},
        "model": {"name": "shared_bottom", "encoder": {"embed_dim": 4},
                  "tower": {"dims": [4]}}})


def probabilities(run) -> np.ndarray:
    return Predictions.load(run / "predictions.npz").probs


def test_a_cut_after_every_known_time_is_no_cut_and_one_before_them_hides_every_label(
        timed, tmp_path):
    matured = train_run(config(timed, None), tmp_path / "matured")
    late = train_run(config(timed, T0 + 10 * 86400), tmp_path / "late")
    early = train_run(config(timed, T0 - 1), tmp_path / "early")
    np.testing.assert_array_equal(probabilities(tmp_path / "late"),
                                  probabilities(tmp_path / "matured"))
    assert late.views["last"].auc == matured.views["last"].auc
    # Nothing known yet: every training label is negative, so the model learns lower rates,
    # while the evaluation still counts the matured positives.
    assert probabilities(tmp_path / "early").mean() < probabilities(tmp_path / "matured").mean()
    assert np.isfinite(early.views["last"].auc)  # scored against the matured positives


def test_as_of_on_days_without_known_at_columns_exits_3(tmp_path, capsys):
    data = write_random_dataset(tmp_path / "plain", days=3, rows=64)
    code = main(["train", "--data", str(data), "--model", "shared_bottom", "--as-of",
                 "2023-11-14", "--out", str(tmp_path / "run")])
    assert code == 3
    assert "--as-of needs the labels' known-at columns" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
