"""Training as of a time: the trainer reads the labels known then; evaluation keeps the
matured ones."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("correction", ["fnw", "fnc"])
def test_a_delay_correction_trains_as_of_a_time_through_the_cli(timed, tmp_path, correction):
    naive = train_run(config(timed, T0 + 3600), tmp_path / "naive")
    args = ["train", "--data", str(timed), "--model", "shared_bottom", "--seed", "3",
            "--main", "last", "--aux", "first", "--batch-size", "64",
            "--model-option", "encoder.embed_dim=4", "--model-option", "tower.dims=[4]",
            "--as-of", str(T0 + 3600), "--delay-correction", correction,
            "--out", str(tmp_path / correction)]
    assert main(args) == 0
    corrected = RunConfig.from_dict(json.loads((tmp_path / correction / "config.json")
                                               .read_text()))
    assert corrected.task.delay_correction == correction
    probs = probabilities(tmp_path / correction)
    assert np.all((probs >= 0) & (probs <= 1)) and np.isfinite(probs).all()
    # same seed, same data, same cut: only the correction differs from the naive run
    assert not np.array_equal(probs, probabilities(tmp_path / "naive"))
    assert np.isfinite(naive.views["last"].auc)


def test_a_delay_correction_without_known_at_columns_exits_3(tmp_path, capsys):
    data = write_random_dataset(tmp_path / "plain", days=3, rows=64)
    code = main(["train", "--data", str(data), "--model", "shared_bottom",
                 "--delay-correction", "fnw", "--out", str(tmp_path / "run")])
    assert code == 3
    assert "task.delay_correction = 'fnw' needs the labels' known-at columns" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, message", [
    (["--delay-correction", "es-dfm"], "expected one of 'none', 'fnw', 'fnc'"),
    (["--delay-correction", "fnc", "--aux", "cat"], "Cartesian view"),
])
def test_a_delay_correction_it_cannot_apply_exits_3(timed, tmp_path, capsys, flags, message):
    code = main(["train", "--data", str(timed), "--model", "natal", *flags,
                 "--out", str(tmp_path / "run")])
    assert code == 3
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_fnw_as_of_after_every_known_time_is_fnw_on_the_matured_labels(timed, tmp_path):
    """No label is delayed: the cut hides nothing, and the correction trains the same bits
    with it as without it."""
    def corrected(as_of):
        tree = config(timed, as_of).to_dict()
        tree["task"]["delay_correction"] = "fnw"
        return RunConfig.from_dict(tree)

    late = train_run(corrected(T0 + 10 * 86400), tmp_path / "late")
    matured = train_run(corrected(None), tmp_path / "matured")
    np.testing.assert_array_equal(probabilities(tmp_path / "late"),
                                  probabilities(tmp_path / "matured"))
    assert late.views["first"].auc == matured.views["first"].auc
