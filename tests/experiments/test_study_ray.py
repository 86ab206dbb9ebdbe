"""`--backend ray`: cells as Ray tasks on one local Ray instance per test module; the same
outcomes, tables and numbers as the local scheduler, resuming, failures and Ctrl-C."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from fake_training import (
    QUICK_LR,
    RESUMED,
    SAVED,
    crashing_train,
    fake_train,
    picky_train,
    stoppable_train,
)
from test_study_cells import config
from test_study_studies import make_context

from malt.cli import main
from malt.errors import ConfigError
from malt.experiments.cells import Cell
from malt.experiments.engine import StudyOptions, study_backend
from malt.experiments.mac import MAC_STUDIES
from malt.experiments.output import write_output
from malt.experiments.scheduler import run_cells
from malt.runs.directory import RunDir
from malt.runs.record import RunMetrics

RAY_CPUS = 2
# One xdist worker runs the whole module, so that `-n 2` starts one Ray instance, not two.
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module: 2 CPUs, its files in a fresh temp directory (a
    short path: Ray's socket paths must stay under 107 characters), no usage reporting, and
    workers that import this directory's fake trainers."""
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="malt-ray-")
    here = str(Path(__file__).parent)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", os.pathsep.join([here, *sys.path]))
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_AUTH_MODE", "disabled")  # else Ray writes a token into ~/.ray
        ray.init(num_cpus=RAY_CPUS, include_dashboard=False, _temp_dir=temp,
                 object_store_memory=100 * 2**20, log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def backend(ray_session):
    """A Ray backend on the module's session, noting the cells it was asked to train."""
    from malt.experiments.ray_backend import RayBackend

    class Spy(RayBackend):
        def __init__(self):
            super().__init__()
            self.submitted: list[list[str]] = []

        def run(self, cells, *args, **kwargs):
            self.submitted.append([c.id for c in cells])
            return super().run(cells, *args, **kwargs)

    return Spy()


def without_timing(metrics: RunMetrics) -> RunMetrics:
    return replace(metrics, train=replace(metrics.train, seconds=0.0, data_wait_seconds=0.0))


# --- without a Ray session ---------------------------------------------------------------------
def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'malt\[ray\]'"):
        with study_backend(StudyOptions(names=("main",), backend="ray")):
            pass


def test_an_address_needs_the_ray_backend():
    with pytest.raises(ConfigError, match="--address .* needs --backend ray"):
        with study_backend(StudyOptions(names=("main",), address="auto")):
            pass


# --- on Ray ------------------------------------------------------------------------------------
def test_a_study_on_ray_writes_the_local_tables(tmp_path, backend):
    written = {}
    for name, jobs, where in (("local", 1, None), ("ray", 2, backend)):
        ctx = make_context(tmp_path / name, models=("base", "natal", "moae"), targets=("last",),
                           lrs=(3e-3, 1e-2), aux_weights=(0.1, 0.3), jobs=jobs, backend=where)
        paths = write_output(ctx.output, "main", MAC_STUDIES["main"][0](ctx))
        written[name] = {p.name: p.read_bytes() for p in paths}
        written[name + " runs"] = sorted(p.name for p in ctx.runs.iterdir())
    assert written["ray"] == written["local"] and written["ray runs"] == written["local runs"]
    # validation: BASE 2 lrs, NATAL and MoAE 2 x 2; the same leaders on the second seed; then
    # 3 tuned models x 2 seeds
    assert [len(batch) for batch in backend.submitted] == [10, 10, 6]


def test_finished_cells_are_not_submitted_again_and_started_ones_resume(tmp_path, backend):
    cells = [Cell(config(train__lr=lr)) for lr in (1e-3, 2e-3, 3e-3)]
    first = run_cells(cells[:1], tmp_path, jobs=2, device="cpu", train=fake_train,
                      backend=backend)
    crashed = run_cells(cells[:2], tmp_path, jobs=2, device="cpu", train=crashing_train,
                        backend=backend)
    assert [crashed[c.id].status for c in cells[:2]] == ["skipped", "failed"]
    again = run_cells(cells, tmp_path, jobs=2, device="cpu", train=fake_train, backend=backend)
    assert backend.submitted == [[cells[0].id], [cells[1].id], [cells[1].id, cells[2].id]]
    assert [again[c.id].status for c in cells] == ["skipped", "done", "done"]
    assert again[cells[0].id].metrics == first[cells[0].id].metrics
    assert again[cells[1].id].metrics.eval_days == RESUMED
    assert again[cells[2].id].metrics.eval_days != RESUMED
    run_cells(cells, tmp_path, jobs=2, device="cpu", train=fake_train, backend=backend)
    assert len(backend.submitted) == 3


def test_a_failed_cell_on_ray_is_reported_while_the_others_finish(tmp_path, backend):
    cells = [Cell(config(train__lr=lr)) for lr in (1e-3, 0.0666, 2e-3, 3e-3)]
    seen = []
    outcomes = run_cells(cells, tmp_path, jobs=2, device="cpu", train=picky_train,
                         backend=backend, report=lambda o, done, total: seen.append(done))
    assert [outcomes[c.id].status for c in cells] == ["done", "failed", "done", "done"]
    assert outcomes[cells[1].id].error == "ValueError: this learning rate always fails"
    assert "this learning rate always fails" in cells[1].run_dir(tmp_path).error_file.read_text()
    assert seen == [1, 2, 3, 4]
    for cell in cells[::2]:
        assert cell.run_dir(tmp_path).load_metrics() == outcomes[cell.id].metrics
    assert not list(tmp_path.glob(".shared-check-*"))


def test_ctrl_c_stops_running_cells_with_their_checkpoint_and_a_rerun_resumes(tmp_path,
                                                                               backend):
    quick, waiting = Cell(config(train__lr=QUICK_LR)), Cell(config(train__lr=2e-3))

    def ctrl_c_once_the_quick_cell_is_done(outcome, finished, total):
        raise KeyboardInterrupt  # as Ctrl-C in the driver's wait

    with pytest.raises(KeyboardInterrupt):
        run_cells([quick, waiting], tmp_path, jobs=2, device="cpu", train=stoppable_train,
                  backend=backend, report=ctrl_c_once_the_quick_cell_is_done)
    stopped = waiting.run_dir(tmp_path)
    assert (stopped.path / SAVED).is_file() and not stopped.is_complete()
    assert not stopped.error_file.exists()
    assert quick.run_dir(tmp_path).is_complete()

    again = run_cells([quick, waiting], tmp_path, jobs=2, device="cpu", train=fake_train,
                      backend=backend)
    assert [again[c.id].status for c in (quick, waiting)] == ["skipped", "done"]
    assert again[waiting.id].metrics.eval_days == RESUMED
    assert backend.submitted[-1] == [waiting.id]


@pytest.mark.slow
def test_real_smoke_runs_on_ray_give_the_local_numbers(tmp_path, ray_session, capsys):
    import torch

    from malt.sources.simulate import simulate, size_config

    data = tmp_path / "data"
    simulate(size_config("tiny", seed=5, users=200), data, overwrite=True)
    common = ["study", "main", "--preset", "smoke", "--data", str(data), "--models", "base",
              "moae", "--targets", "last", "--seeds", "1", "--device", "cpu"]
    # Same torch threads on both sides (the numbers depend on them): one here, where --jobs 1
    # trains in this process, and RAY_CPUS // 2 = 1 per task with --jobs 2 on Ray.
    assert torch.get_num_threads() == 1
    assert main([*common, "--out", str(tmp_path / "local"), "--jobs", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--jobs", "2", "--backend", "ray"]) == 0
    assert "2 runs, 0 already complete" in capsys.readouterr().out
    for table in ("main.csv", "main-settings.csv"):
        assert (tmp_path / "ray" / table).read_text() == (tmp_path / "local" / table).read_text()
    local_runs = sorted((tmp_path / "local" / "runs").iterdir())
    assert [p.name for p in local_runs] == sorted(p.name for p in (tmp_path / "ray" / "runs")
                                                 .iterdir())
    assert len(local_runs) == 2
    for run in local_runs:
        local = RunDir(run).load_metrics()
        on_ray = RunDir(tmp_path / "ray" / "runs" / run.name).load_metrics()
        assert without_timing(on_ray) == without_timing(local)
        assert on_ray.train.rows == local.train.rows > 0
