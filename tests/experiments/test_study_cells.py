"""Cells (content-addressed runs) and the scheduler: ids, skipping, failures, resuming."""

from __future__ import annotations

import signal
import sys

import pytest
from fake_training import (
    DRIVER_CTRL_C,
    QUICK_LR,
    RESUMED,
    crashing_train,
    ctrl_c_watching_train,
    fake_train,
    interrupted_train,
    metrics_for,
    picky_train,
)

from malt.experiments.cells import Cell, execute
from malt.experiments.scheduler import Outcome, Workers, plan_workers, run_cells
from malt.runs.config import RunConfig


def config(**changes) -> RunConfig:
    tree = {"seed": 1, "data": {"path": "/data/a"},
            "task": {"main": "last", "aux": ["first", "cat"], "aux_weight": 0.2},
            "train": {"lr": 3e-3, "batch_size": 64},
            "model": {"name": "moae", "encoder": {"embed_dim": 8}}}
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            tree[section] = {**tree[section], key: value}
        else:
            tree[section] = value
    return RunConfig.from_dict(tree)


# --- ids -----------------------------------------------------------------------------------------
def test_id_is_stable_readable_and_content_derived():
    cell = Cell(config())
    assert cell.id == Cell(config()).id == Cell(RunConfig.from_dict(config().to_dict())).id
    assert cell.id.startswith("moae-last-s1-") and len(cell.id.rsplit("-", 1)[1]) == 12
    for change in ({"train__lr": 4e-3}, {"task__aux": ["first"]}, {"task__aux_weight": 0.3},
                   {"seed": 2}, {"model": {"name": "moae", "encoder": {"embed_dim": 16}}},
                   {"data__eval_split": "validation"}, {"train__grad_method": "pcgrad"},
                   {"train__precision": "bf16"}):
        assert Cell(config(**change)).id != cell.id, change
    assert Cell(config(data__eval_split="validation")).id.startswith("moae-last-val-s1-")


def test_an_option_added_later_keeps_the_ids_of_earlier_studies_at_its_default():
    """The id this config has had since its cells were first named: a run config field added
    with a default must be left out of the digest at that default, or every finished study
    would train again."""
    assert Cell(config()).id == "moae-last-s1-42d5e88f32e6"
    dwa = Cell(config(train__grad_method="dwa")).id
    assert Cell(config(train__grad_method="dwa", train__dwa_period=100)).id == dwa
    assert Cell(config(train__grad_method="dwa", train__dwa_period=50)).id != dwa
    mmoe = {"model": {"name": "mmoe"}, "task__aux": ["first"]}
    assert Cell(config(**mmoe, task__entire_space=True)).id != Cell(config(**mmoe)).id


def test_id_ignores_what_does_not_change_the_numbers():
    cell = Cell(config())
    for change in ({"train__device": "cpu"}, {"train__compile": True}, {"train__log_every": 7},
                   {"data__path": "/elsewhere"}, {"data__cache": "/tmp/cache"},
                   {"train__tracker": "mlflow"}, {"train__tracking_uri": "http://t:5000"},
                   {"train__mlflow_experiment": "other"}):
        assert Cell(config(**change)).id == cell.id, change


def test_reference_weight_and_its_value_are_one_cell():
    assert Cell(config(task__aux_weight=None)).id == Cell(config(task__aux_weight=0.3)).id
    assert Cell(config(task__aux_weight=None, task__main="first", task__aux=["last"])).id == \
        Cell(config(task__aux_weight=0.1, task__main="first", task__aux=["last"])).id


def test_seeded_cells_differ_only_by_seed():
    cell = Cell(config())
    other = cell.seeded(5)
    assert other.config.seed == 5 and cell.config.seed == 1
    assert other.id != cell.id and other.seeded(1) == cell


# --- execute -------------------------------------------------------------------------------------
def test_execute_skips_a_complete_run(tmp_path):
    cell = Cell(config())
    first = execute(cell, tmp_path, train=fake_train)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a complete cell was trained again")

    assert execute(cell, tmp_path, train=must_not_train) == first


def test_execute_resumes_a_started_run_and_clears_its_error(tmp_path):
    cell = Cell(config())
    with pytest.raises(RuntimeError, match="simulated crash"):
        execute(cell, tmp_path, train=crashing_train)
    error = cell.run_dir(tmp_path).error_file
    assert "simulated crash" in error.read_text()
    metrics = execute(cell, tmp_path, train=fake_train)
    assert metrics.eval_days == RESUMED
    assert not error.exists()


def test_execute_passes_interruptions_through_without_an_error_file(tmp_path):
    from malt.errors import Interrupted

    cell = Cell(config())
    with pytest.raises(Interrupted):
        execute(cell, tmp_path, train=interrupted_train)
    assert not (cell.run_dir(tmp_path).error_file).exists()


# --- scheduler -----------------------------------------------------------------------------------
def test_run_cells_deduplicates_skips_and_reports(tmp_path):
    cells = [Cell(config(train__lr=lr)) for lr in (1e-3, 2e-3, 1e-3)]
    seen = []
    first = run_cells(cells, tmp_path, device="cpu", train=fake_train,
                      report=lambda o, done, total: seen.append((o.status, done, total)))
    assert list(first) == [cells[0].id, cells[1].id]
    assert seen == [("done", 1, 2), ("done", 2, 2)]
    again = run_cells(cells, tmp_path, device="cpu", train=fake_train)
    assert {o.status for o in again.values()} == {"skipped"}
    assert again[cells[0].id].metrics == first[cells[0].id].metrics


def test_a_failed_cell_is_reported_and_the_others_run(tmp_path):
    cells = [Cell(config(train__lr=lr)) for lr in (1e-3, 0.0666, 2e-3)]
    outcomes = run_cells(cells, tmp_path, device="cpu", train=picky_train)
    status = [outcomes[c.id].status for c in cells]
    assert status == ["done", "failed", "done"]
    failed = outcomes[cells[1].id]
    assert failed.metrics is None and failed.error == \
        "ValueError: this learning rate always fails"
    assert (cells[1].run_dir(tmp_path).error_file).is_file()


def test_a_crashed_study_resumes_its_unfinished_cells(tmp_path):
    cells = [Cell(config(train__lr=lr)) for lr in (1e-3, 2e-3)]
    run_cells(cells[:1], tmp_path, device="cpu", train=fake_train)
    crashed = run_cells(cells, tmp_path, device="cpu", train=crashing_train)
    assert [crashed[c.id].status for c in cells] == ["skipped", "failed"]
    assert crashed[cells[1].id].error == "RuntimeError: simulated crash"
    resumed = run_cells(cells, tmp_path, device="cpu", train=fake_train)
    assert [resumed[c.id].status for c in cells] == ["skipped", "done"]
    assert resumed[cells[1].id].metrics.eval_days == RESUMED


def test_an_interrupted_cell_stops_the_batch(tmp_path):
    cells = [Cell(config(train__lr=lr)) for lr in (1e-3, 2e-3)]
    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, tmp_path, device="cpu", train=interrupted_train)
    assert not cells[1].run_dir(tmp_path).path.exists()


@pytest.mark.parametrize("jobs, gpus, cores, cpu_jobs, cells, expected", [
    (None, (), 8, 1, None, Workers(1, 8)),
    (None, (), 8, None, None, Workers(8, 1)),
    (None, (), 8, None, 3, Workers(3, 2)),
    (3, (), 8, None, None, Workers(3, 2)),
    (None, ("0", "1"), 16, 1, None, Workers(2, 8, ("0", "1"))),
    (None, ("0", "1"), 16, 1, 1, Workers(1, 16, ("0", "1"))),
    (4, ("3",), 16, 1, None, Workers(4, 4, ("3",))),
])
def test_plan_workers(jobs, gpus, cores, cpu_jobs, cells, expected):
    assert plan_workers(jobs, gpus, cores, cpu_jobs, cells) == expected


def test_parallel_workers_give_the_same_outcomes(tmp_path):
    cells = [Cell(config(train__lr=lr)) for lr in (1e-3, 0.0666, 2e-3, 3e-3)]
    outcomes = run_cells(cells, tmp_path, jobs=2, device="cpu", train=picky_train)
    assert [outcomes[c.id].status for c in cells] == ["done", "failed", "done", "done"]
    for cell in cells[::2]:
        saved = cell.run_dir(tmp_path).load_metrics()
        assert saved == outcomes[cell.id].metrics


@pytest.mark.skipif(sys.platform != "linux", reason="reads the driver's signals from /proc")
def test_the_driver_ignores_a_second_ctrl_c_while_its_workers_stop(tmp_path):
    # Cut short, the wait would leave the idle workers without their sentinels, and the
    # process would hang at exit joining them.
    quick, waiting = Cell(config(train__lr=QUICK_LR)), Cell(config(train__lr=2e-3))

    def ctrl_c_once_the_quick_cell_is_done(outcome, finished, total):
        raise KeyboardInterrupt  # as Ctrl-C in the driver's wait

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run_cells([quick, waiting], tmp_path, jobs=2, device="cpu",
                  train=ctrl_c_watching_train, report=ctrl_c_once_the_quick_cell_is_done)
    assert (waiting.run_dir(tmp_path).path / DRIVER_CTRL_C).read_text() == "ignored"
    assert signal.getsignal(signal.SIGINT) is handler  # and takes Ctrl-C again


def test_a_ctrl_c_taken_inside_a_finaliser_still_stops_the_study(tmp_path):
    # The default handler's KeyboardInterrupt, raised inside a finaliser (as inside a weak
    # reference's garbage-collection callback), is printed as ignored and lost; the driver
    # must stop all the same.
    import os
    import time

    class CtrlCWhenCollected:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, inside the finaliser

    def ctrl_c_after_the_first_cell(outcome, finished, total):
        if finished == 1:
            CtrlCWhenCollected()

    cells = [Cell(config(train__lr=lr)) for lr in (1e-3, 2e-3, 3e-3)]
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, tmp_path, jobs=2, device="cpu", train=fake_train,
                  report=ctrl_c_after_the_first_cell)
    assert signal.getsignal(signal.SIGINT) is handler


def test_a_worker_starts_no_cell_once_the_pool_is_stopping(tmp_path, monkeypatch):
    import threading

    from malt.experiments import scheduler

    stop = threading.Event()
    monkeypatch.setattr(scheduler, "_STOP", stop)
    cell = Cell(config())
    assert scheduler.run_one(cell, tmp_path, fake_train)[0] == "done"
    stop.set()
    other = Cell(config(train__lr=1e-3))
    assert scheduler.run_one(other, tmp_path, fake_train)[0] == "interrupted"
    assert not other.run_dir(tmp_path).path.exists()


def test_a_worker_started_after_its_driver_died_ends_itself():
    # The driver can be killed while a worker is still starting; that worker's parent is then
    # already someone else, and it must still see that its driver is gone.
    import subprocess

    from malt.experiments.scheduler import EXIT_ORPHANED

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    worker = (f"import threading, time\n"
              f"from malt.experiments import scheduler\n"
              f"scheduler._init_worker({gone.pid}, 1, None, threading.Event())\n"
              f"time.sleep(60)\n")
    assert subprocess.run([sys.executable, "-c", worker], timeout=50).returncode == EXIT_ORPHANED


def test_progress_line_scores_done_cells_points_failed_ones_to_their_traceback(tmp_path):
    cell = Cell(config())
    score = lambda metrics: f"GAUC {metrics.main_metrics.gauc:.2f}"  # noqa: E731
    done = Outcome(cell, "done", metrics=metrics_for(cell.config), seconds=12.4)
    gauc = metrics_for(cell.config).main_metrics.gauc
    assert done.progress_line(1, 3, tmp_path, score) == \
        f"  [1/3] {cell.id}  12 s  GAUC {gauc:.2f}"
    failed = Outcome(cell, "failed", error="ValueError: bad")
    line = failed.progress_line(2, 3, tmp_path, score)
    assert "FAILED: ValueError: bad" in line
    assert str(cell.run_dir(tmp_path).error_file) in line
    assert Outcome(cell, "skipped", metrics=metrics_for(cell.config)).progress_line(
        3, 3, tmp_path, score) is None
