"""The task weightings and aggregators inside the trainer: one step against the same step done
by hand, every multi-task model trained with each, the table of weights and its scalars in
TensorBoard and the tracker, resume."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from malt.data.batches import DayBatches
from malt.errors import ConfigError, Interrupted
from malt.eval.predictions import Predictions
from malt.jobs.train import train_run
from malt.models.registry import model_names, model_spec
from malt.runs.checkpoint import load_checkpoint
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.tracking import Tracker
from malt.training import aggregation, grad_methods
from malt.training.builder import build_run
from malt.training.distributed import World
from malt.training.trainer import Trainer
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS
from support.training_steps import reference_optimisation, stop_at_step

HAVE_TORCHJD = all(aggregation.importlib.util.find_spec(name) is not None
                   for name in ("torchjd", "quadprog", "cvxpy"))
METHODS = ["uncertainty", "dwa", "gcs-ema",
           *(pytest.param(m, marks=pytest.mark.skipif(not HAVE_TORCHJD, reason="no torchjd"))
             for m in aggregation.AGGREGATORS)]
MULTI_TASK = [name for name in model_names() if model_spec(name).traits.uses_aux and
              model_spec(name).traits.shares_parameters]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("auxm") / "data", days=3, rows=200)


def _config(data: Path, model: str = "mmoe", aux_weight: float = 0.3, **train) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 5, "data": {"path": str(data)},
        "task": {"main": "last", "aux": ["first", "linear"], "aux_weight": aux_weight},
        "train": {"batch_size": 64, "log_every": 2, "warmup_fraction": 0.0, "lr": 0.01,
                  **train},
        "model": {"name": model, **SMALL_BLOCKS}})


def _trainer(data: Path, tmp_path: Path, **kwargs) -> Trainer:
    return Trainer(build_run(_config(data, **kwargs)), RunDir(tmp_path / "run"))


def _batch(trainer: Trainer) -> dict:
    return next(iter(DayBatches(trainer.train_days[0], trainer.config.train.batch_size)))



def _tasks(model, batch, task):
    terms = model.loss_terms(model(batch), batch)
    return [terms[task.main].value, *(t.value for t in terms if t.name != task.main)]


def _assert_same_parameters(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("method", ["uncertainty", "dwa"])
def test_a_loss_weighting_starts_as_the_plain_weighted_sum(data, tmp_path, method):
    # s = 0 (uncertainty) and w = 1 before two periods (DWA): L_m + λ Σ L_k, to the bit
    trainer = _trainer(data, tmp_path, grad_method=method)
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    main, *aux = _tasks(model, batch, trainer.task)
    (main + 0.3 * sum(aux)).backward()
    optimisation.step()
    report = trainer.train_step(batch)
    torch.testing.assert_close(trainer.model(batch).logits["last"], model(batch).logits["last"])
    assert report.task_weights == pytest.approx({"last": 1.0, "first": 0.3, "linear": 0.3})
    if method == "uncertainty":  # and the log-variances took one Adam step, at lr
        steps = trainer.loss_weighting.log_variance.detach()
        assert steps.abs().tolist() == pytest.approx([0.01] * 3, rel=1e-4)


def test_uncertainty_steps_with_its_weights_once_they_have_moved(data, tmp_path):
    trainer = _trainer(data, tmp_path, grad_method="uncertainty")
    trainer.loss_weighting.load_state_dict(
        {"log_variance": torch.tensor([0.5, -0.2, 1.0]),
         "adam": torch.optim.Adam([torch.zeros(3, requires_grad=True)]).state_dict()})
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    main, *aux = _tasks(model, batch, trainer.task)
    s = [0.5, -0.2, 1.0]
    (math.exp(-s[0]) * main + 0.3 * (math.exp(-s[1]) * aux[0] + math.exp(-s[2]) * aux[1])
     ).backward()
    optimisation.step()
    trainer.train_step(batch)
    for p, q in zip(trainer.model.parameters(), model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)


def test_gcs_ema_without_smoothing_is_gcs_clip(data, tmp_path):
    smoothed = _trainer(data, tmp_path / "a", grad_method="gcs-ema", gcs_ema_decay=0.0)
    clipped = _trainer(data, tmp_path / "b", grad_method="gcs", gcs_weighting="clip")
    batch = _batch(smoothed)
    reports = [trainer.train_step(batch) for trainer in (smoothed, clipped)]
    # the same update up to rounding (gcs-ema keeps its averages in float64)
    for p, q in zip(smoothed.model.parameters(), clipped.model.parameters()):
        torch.testing.assert_close(p, q)
    assert reports[0].task_weights == pytest.approx(reports[1].task_weights)
    assert smoothed.similarity.average is not None


@pytest.mark.skipif(not HAVE_TORCHJD, reason="no torchjd")
@pytest.mark.parametrize("method", aggregation.AGGREGATORS)
def test_an_aggregator_steps_with_its_aggregated_gradient(data, tmp_path, method):
    trainer = _trainer(data, tmp_path, grad_method=method)
    batch = _batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = grad_methods.task_gradients(_tasks(model, batch, trainer.task), params, World())
    combined, weights = aggregation.aggregate(grads, params,
                                              aggregation.weighting_of(method, 0.5), 0.3)
    for p, g in zip(params, combined):
        p.grad = g
    optimisation.step()
    report = trainer.train_step(batch)
    _assert_same_parameters(trainer.model, model)
    assert list(report.task_weights.values()) == pytest.approx(weights)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", MULTI_TASK)
def test_every_multi_task_model_fits_a_batch_with_every_method(data, tmp_path, model, method):
    trainer = _trainer(data, tmp_path, model=model, grad_method=method, dwa_period=2) \
        if method == "dwa" else _trainer(data, tmp_path, model=model, grad_method=method)
    batch = _batch(trainer)

    def tasks_loss() -> float:  # every task's loss unweighted: MGDA may trade the main one
        with torch.no_grad():
            return float(sum(trainer.model.loss_terms(trainer.model(batch), batch).tasks()))

    first = tasks_loss()
    for _ in range(12):
        report = trainer.train_step(batch)
    assert tasks_loss() < first
    assert all(math.isfinite(w) for w in report.task_weights.values())
    assert list(report.task_weights)[0] == "last" and len(report.task_weights) >= 3


# stopped just after a logged step (4), and between two (5); DWA with periods of 2 steps
@pytest.mark.parametrize("method, options, stop_after", [
    ("uncertainty", {}, 4), ("uncertainty", {}, 5), ("dwa", {"dwa_period": 2}, 5),
    ("gcs-ema", {"gcs_ema_decay": 0.5}, 5)])
def test_a_run_writes_its_task_weights_and_resumes_to_identical_numbers(
        data, tmp_path, monkeypatch, method, options, stop_after):
    config = _config(data, grad_method=method, shuffle=True, **options)
    train_run(config, tmp_path / "whole")
    original = stop_at_step(monkeypatch, stop_after)
    with pytest.raises(Interrupted):
        train_run(config, tmp_path / "cut")
    saved = load_checkpoint(tmp_path / "cut" / "checkpoint.safetensors").optimisation
    assert saved["task_weighting"]
    monkeypatch.setattr(Trainer, "train_step", original)
    train_run(config, tmp_path / "cut", resume=True)
    np.testing.assert_array_equal(Predictions.load(tmp_path / "cut" / "predictions.npz").probs,
                                  Predictions.load(tmp_path / "whole" / "predictions.npz").probs)
    tables = [(tmp_path / run / "task_weights.csv").read_text() for run in ("whole", "cut")]
    assert tables[0] == tables[1]
    rows = list(csv.DictReader(tables[0].splitlines()))
    assert list(rows[0]) == ["step", "last", "first", "linear"]
    # 8 steps (2 training days of 200 rows at 64), logged after the first, every second and
    # the last, each at the number of steps done (TensorBoard's axis)
    assert [int(r["step"]) for r in rows] == [1, 2, 4, 6, 8]
    assert float(rows[0]["last"]) == pytest.approx(1.0)
    assert [rows[0][view] for view in ("first", "linear")] != \
        [rows[-1][view] for view in ("first", "linear")]  # the weights moved


class _RecordingTracker(Tracker):
    """Keeps the scalars of every logged step, as the MLflow tracker would receive them."""

    def __init__(self):
        self.logged: dict[int, dict[str, float]] = {}

    def log_metrics(self, values, step):
        self.logged[step] = dict(values)


def test_a_loss_weighting_logs_its_weights_to_tensorboard_and_the_tracker(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = _RecordingTracker()
    run = RunDir(tmp_path / "run")
    Trainer(build_run(_config(data, grad_method="uncertainty")), run, tracker).fit()
    events = EventAccumulator(str(run.tensorboard_dir))
    events.Reload()
    table = list(csv.DictReader(run.task_weights_file.read_text().splitlines()))
    for view in ("last", "first", "linear"):
        key = f"task_weight/{view}"
        board = [(e.step, e.value) for e in events.Scalars(key)]
        tracked = [(step, scalars[key]) for step, scalars in sorted(tracker.logged.items())]
        written = [(int(row["step"]), float(row[view])) for row in table]
        assert [step for step, _ in board] == [step for step, _ in tracked] == [1, 2, 4, 6, 8]
        # TensorBoard keeps float32
        assert [value for _, value in board] == pytest.approx([v for _, v in tracked], rel=1e-6)
        assert [value for _, value in tracked] == pytest.approx([v for _, v in written])
    first, last = tracker.logged[1], tracker.logged[8]
    assert (first["task_weight/last"], first["task_weight/first"]) == pytest.approx((1.0, 0.3))
    assert last["task_weight/first"] != pytest.approx(0.3)  # learned, not the fixed λ


@pytest.mark.parametrize("train, message", [
    ({"grad_method": "uncertainty", "dwa_period": 5}, "train.dwa_period applies to grad_method "
                                                      "'dwa', not 'uncertainty'"),
    ({"grad_method": "dwa", "gcs_ema_decay": 0.5}, "train.gcs_ema_decay applies to "
                                                   "grad_method 'gcs-ema', not 'dwa'"),
    ({"grad_method": "upgrad", "grad_variant": "reference"}, "train.grad_variant applies to "
                                                             "grad_method 'none' or 'gcs' or "
                                                             "'pcgrad', not 'upgrad'"),
    ({"grad_method": "mgda", "cagrad_c": 0.2}, "train.cagrad_c applies to grad_method "
                                               "'cagrad', not 'mgda'"),
    ({"grad_method": "gcs-ema", "table_optimizer": "lazy"}, "train.table_optimizer 'lazy' "
                                                            "works with grad_method"),
    ({"grad_method": "dwa", "dwa_temperature": 0}, "train.dwa_temperature"),
    ({"grad_method": "gcs-ema", "gcs_ema_decay": 1.0}, "train.gcs_ema_decay"),
])
def test_options_of_another_method_or_out_of_range_are_refused(data, train, message):
    with pytest.raises(ConfigError, match="^config: " + message):
        _config(data, **train)


def test_a_loss_weighting_keeps_the_sparse_table_gradients(data):
    assert _config(data, grad_method="dwa").sparse_table_gradients("cpu")
    assert _config(data, grad_method="uncertainty", table_optimizer="lazy").sparse_table_gradients()
    assert not _config(data, grad_method="gcs-ema").sparse_table_gradients("cpu")


@pytest.mark.parametrize("optimiser", [True, False])
def test_a_warm_start_with_the_parents_optimiser_continues_its_task_weighting(
        data, tmp_path, optimiser):
    config = _config(data, grad_method="gcs-ema")
    train_run(config, tmp_path / "parent")
    parent = load_checkpoint(tmp_path / "parent" / "checkpoint.safetensors")
    child = _trainer(data, tmp_path / "child", grad_method="gcs-ema")
    child.start_from(parent, optimiser=optimiser, source=tmp_path / "parent")
    if optimiser:
        assert torch.equal(child.similarity.average,
                           parent.optimisation["task_weighting"]["average"])
    else:
        assert child.similarity.average is None
