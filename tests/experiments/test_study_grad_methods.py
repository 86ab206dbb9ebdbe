"""`malt study grad-methods` on the fake trainer: its rows, Δ cells and intervals, the weight
tables read from each run's `task_weights.csv`, and its refusals; then through the CLI on a
tiny data set with real training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fake_training import weighing_train

from malt.cli import main
from malt.data.schema import MAC
from malt.errors import ConfigError
from malt.experiments import grad_study
from malt.experiments.engine import protocols
from malt.experiments.grad_study import pick_methods, study_grad_methods
from malt.experiments.presets import PRESETS
from malt.experiments.study import Study
from malt.outputs import OutputDir
from support.mac_data import write_random_dataset


def _study(tmp_path: Path, **changes) -> Study:
    fields = dict(preset="smoke", setup=PRESETS["smoke"].mac, data=Path("/data/mac"),
                  output=OutputDir(tmp_path, "study"), labels=MAC.labels, seeds=(1, 2),
                  train=weighing_train, device="cpu", jobs=1, say=lambda line: None,
                  models=("moae",), targets=("last", "first"),
                  grad_methods=("pcgrad", "gcs-ema"))
    fields.update(changes)
    return Study(**fields)


def test_every_method_is_a_row_with_its_delta_to_the_plain_sum(tmp_path):
    table, over, end = (t for _, t in study_grad_methods(_study(tmp_path)).tables)
    assert table.rows == [f"{target} · {method}" for target in ("Last-Click", "First-Click")
                          for method in ("plain sum", "PCGrad", "GCS-EMA")]
    assert [c.key for c in table.columns] == ["auc", "gauc", "dauc", "dgauc", "verdict"]
    # The fake score gives PCGrad +0.003 and every other method nothing.
    assert table.stats("Last-Click · PCGrad", "dgauc") == pytest.approx((0.003, 0.0, 2))
    assert table.stats("First-Click · GCS-EMA", "dauc")[0] == pytest.approx(0.0)
    for row in table.rows:
        plain = row.endswith("plain sum")
        assert ((row, "dgauc") in table.intervals) is not plain
        assert ((row, "verdict") in table.values) is not plain
    assert table.intervals[("Last-Click · PCGrad", "dgauc")].seeds == 2
    assert table.rank_groups == [table.rows[:3], table.rows[3:]]
    # Only the runs that weigh their tasks have weights: not the plain sum, not PCGrad.
    assert over.rows == end.rows == ["Last-Click · GCS-EMA", "First-Click · GCS-EMA"]
    # The last-click target's auxiliary set is every other label and CAT (MoAE), first-click's
    # last-click alone (MAC App. A); the i-th term weighs (i + 1)/10 at the end, half on average.
    assert end.stats("Last-Click · GCS-EMA", "main") == pytest.approx((1.0, 0.0, 2))
    assert end.stats("Last-Click · GCS-EMA", "linear")[0] == pytest.approx(0.2)
    assert over.stats("Last-Click · GCS-EMA", "cat")[0] == pytest.approx(0.2)
    assert over.stats("First-Click · GCS-EMA", "last")[0] == pytest.approx(0.05)
    assert over.stats("First-Click · GCS-EMA", "mta")[2] == 0
    assert over.stats("Last-Click · GCS-EMA", "last")[2] == 0


def test_the_row_names_the_model_when_several_are_compared(tmp_path):
    table = study_grad_methods(_study(tmp_path, models=("mmoe", "moae"), targets=("last",),
                                      grad_methods=("dwa",), seeds=(1,))).tables[0][1]
    assert table.rows == ["MMoE · plain sum", "MMoE · DWA", "MoAE · plain sum", "MoAE · DWA"]


@pytest.mark.parametrize("model", ["base", "single_task"])
def test_models_whose_views_share_nothing_are_refused(tmp_path, model):
    with pytest.raises(ConfigError, match=f"share parameters; {model} has none to share"):
        study_grad_methods(_study(tmp_path, models=(model,)))
    assert not (tmp_path / "runs").exists()


def test_the_default_methods_leave_out_those_not_installed(monkeypatch):
    said = []
    assert "cagrad" in pick_methods(None, said.append) and said == []
    monkeypatch.setattr(grad_study.aggregation, "missing_packages",
                        lambda method: ["torchjd"])
    assert pick_methods(None, said.append) == ("gcs", "pcgrad", "uncertainty", "dwa", "gcs-ema")
    assert said == ["left out upgrad, mgda, cagrad (needs torchjd and its solvers: "
                    "pip install 'malt[aux]')"]
    with pytest.raises(ConfigError, match="--grad-methods mgda needs torchjd, which is not "
                                          "installed"):
        pick_methods(("gcs", "mgda"), said.append)
    assert pick_methods(("none", "gcs"), said.append) == ("gcs",)


def test_all_leaves_the_study_out():
    assert "grad-methods" not in [p.name for p in protocols(("all",))]
    assert [p.name for p in protocols(("grad-methods",))] == ["grad-methods"]


@pytest.mark.slow
def test_grad_methods_study_through_the_cli(tmp_path, capsys):
    data = write_random_dataset(tmp_path / "data", days=4, rows=600)
    out = tmp_path / "study"
    assert main(["study", "grad-methods", "--preset", "smoke", "--data", str(data), "--out",
                 str(out), "--targets", "last", "first", "--grad-methods", "uncertainty",
                 "pcgrad", "--seeds", "2", "--jobs", "1", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "12 runs, 0 already complete" in said
    assert "MoAE + PCGrad vs the plain sum on First-Click (2 seeds): ΔAUC" in said
    table = pd.read_csv(out / "grad-methods.csv").set_index("Method")
    assert list(table.index) == [f"{t} · {m}" for t in ("Last-Click", "First-Click")
                                 for m in ("plain sum", "Uncertainty", "PCGrad")]
    for row in ("Last-Click · Uncertainty", "First-Click · PCGrad"):
        assert table.loc[row, "dgauc_low"] <= table.loc[row, "dgauc"] <= \
            table.loc[row, "dgauc_high"]
        assert table.loc[row, "dgauc_n"] == 2
        assert isinstance(table.loc[row, "verdict"], str)
    assert table.loc["Last-Click · plain sum", ["dauc_low", "dauc_n"]].tolist() == [
        pytest.approx(float("nan"), nan_ok=True), 0]
    weights = pd.read_csv(out / "grad-methods-weights.csv").set_index("Method")
    assert list(weights.index) == ["Last-Click · Uncertainty", "First-Click · Uncertainty"]
    # Uncertainty weighs a task e^{-s} (λ e^{-s} for an auxiliary one): positive, and its
    # log-variances move away from 0 over the pass.
    assert (weights.loc["Last-Click · Uncertainty", ["main", "first", "mta", "linear", "cat"]]
            > 0).all()
    assert weights.loc["First-Click · Uncertainty", "mta_n"] == 0
    # The runs log their weights at about 50 points of the pass, not the preset's every 1000.
    run = next(p for p in (out / "runs").iterdir() if (p / "task_weights.csv").is_file())
    assert len((run / "task_weights.csv").read_text().splitlines()) > 3
    assert "**Auxiliary-task learning methods against the plain sum**" in \
        (out / "grad-methods.md").read_text()


def test_dwa_runs_too_short_to_move_a_weight_are_noted(tmp_path):
    from malt.data.cache import prepare
    from malt.experiments.grad_study import dwa_note
    from malt.experiments.search import Setting
    from malt.experiments.study import Variant

    data = write_random_dataset(tmp_path / "data", days=4, rows=600)
    dataset = prepare(data)
    entries = [("moae", "last", "dwa", Variant("moae", "last", ("first",), Setting(1e-2), "dwa"))]
    # 3 training days of 600 rows at the smoke preset's batch of 512: 6 steps.
    note = dwa_note(_study(tmp_path, data=data, dataset=dataset), entries)
    assert note == ("DWA weighs every task 1 until two periods of 100 steps (`dwa_period`) "
                    "have finished, and these runs take 6 steps: DWA trained the plain sum here.")
    # Two periods of 3 end with the run's last step: no step is left to use their weights.
    assert "take 6 steps" in dwa_note(_study(tmp_path, data=data, dataset=dataset, overrides={
        "train": {"dwa_period": 3}}), entries)
    assert dwa_note(_study(tmp_path, data=data, dataset=dataset,
                           overrides={"train": {"dwa_period": 2}}), entries) is None
    assert dwa_note(_study(tmp_path, data=data, dataset=dataset), entries[:0]) is None


def _trained(out: Path) -> list:
    """The configs of the runs a study trained under `out`."""
    from malt.runs.directory import RunDir

    return [RunDir(run).load_config() for run in sorted((out / "runs").iterdir())]


def test_dwa_period_reaches_the_dwa_runs_alone(tmp_path):
    study_grad_methods(_study(tmp_path, grad_methods=("dwa", "uncertainty"), dwa_period=7))
    periods = {(c.task.main, c.train.grad_method): c.train.dwa_period for c in _trained(tmp_path)
               if c.task.aux}
    assert {k for k in periods if k[1] == "dwa"} == {("last", "dwa"), ("first", "dwa")}
    for (_, method), period in periods.items():
        assert period == (7 if method == "dwa" else 100)


def test_dwa_period_defaults_to_a_tenth_of_the_runs_steps(tmp_path):
    from malt.data.cache import prepare

    # 3 training days of 2,000 rows at the smoke preset's batch of 512: 4 + 4 + 4 = 12 steps.
    data = write_random_dataset(tmp_path / "data", days=4, rows=2000)
    study = _study(tmp_path / "study", data=data, dataset=prepare(data), targets=("last",),
                   grad_methods=("dwa",), seeds=(1,))
    study_grad_methods(study)
    dwa = [c for c in _trained(tmp_path / "study") if c.train.grad_method == "dwa"]
    assert [c.train.dwa_period for c in dwa] == [1]
    assert grad_study.run_steps(study, dwa[0]) == 12


def test_the_study_default_lets_dwa_move_within_the_studys_runs():
    # One pass of the published runs: 47 steps (6,000 users) and 70 (small preset).
    for steps in (47, 70):
        period = max(1, steps // grad_study.DWA_PERIODS)
        assert 2 * period < steps / 4
        assert steps // period - 2 >= 5  # weight updates after the first two periods


def test_lambda_zero_leaves_a_target_out_of_the_study(tmp_path):
    said = []
    output = study_grad_methods(_study(tmp_path, aux_weights=(0.0,), targets=("last",),
                                       say=said.append))
    assert output.tables[0][1].rows == []
    assert "MoAE · Last-Click: λ = 0 trains no auxiliary loss, nothing to compare" in said


def test_dwa_period_flag_parses():
    import argparse

    from malt.commands._options import read_options
    from malt.commands.study import configure
    from malt.experiments.options import StudyOptions

    parser = argparse.ArgumentParser()
    configure(parser)
    options = read_options(parser.parse_args(["grad-methods", "--dwa-period", "5"]),
                           StudyOptions)
    assert options.dwa_period == 5
    assert read_options(parser.parse_args(["grad-methods"]), StudyOptions).dwa_period is None
