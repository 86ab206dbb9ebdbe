"""`--tracker mlflow`: a run's config, step scalars, evaluation and files in an MLflow store,
read back with MLflow's own client; resume continues the same MLflow run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import malt
from malt.errors import ConfigError, Interrupted
from malt.jobs.train import train_run
from malt.metrics import ViewMetrics
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.tracking import (
    evaluation_metrics,
    open_tracker,
    resolve_tracking_uri,
    run_params,
)
from malt.training.trainer import Trainer
from support.mac_data import write_random_dataset

STEPS = 15
"""3 training days of 301 rows at batch 64: 5 steps a day."""
TRAIN_STEP = Trainer.train_step


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("tracking") / "data", days=4, rows=301)


@pytest.fixture(autouse=True)
def _mlflow_environment(monkeypatch):
    """The tracker sets MLFLOW_ALLOW_FILE_STORE for a file store: undone after each test."""
    for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)


def _config(data: Path, store: Path, model="mmoe", aux=("first", "cat"), **train) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 7, "data": {"path": str(data)},
        "task": {"main": "last", "aux": list(aux)},
        "train": {"batch_size": 64, "log_every": 2, "tracker": "mlflow",
                  "tracking_uri": store.as_uri(), **train},
        "model": {"name": model, "encoder": {"embed_dim": 8, "attention_heads": 2},
                  **({"expert": {"dim": 16}, "tower": {"dims": [8, 4]}} if model == "mmoe"
                     else {})},
    })


def _client(store: Path) -> MlflowClient:
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # undone by the autouse fixture
    return MlflowClient(tracking_uri=store.as_uri())


def _recorded_run_id(run: Path) -> str:
    return json.loads((run / "mlflow.json").read_text())["run_id"]


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _stop_at(monkeypatch, step: int) -> None:
    def stopping_step(self, batch):
        report = TRAIN_STEP(self, batch)
        if self.state.global_step + 1 == step:
            self.request_stop()
        return report

    monkeypatch.setattr(Trainer, "train_step", stopping_step)


def test_a_tracked_run_holds_config_steps_evaluation_and_files(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    store, run = tmp_path / "mlruns", tmp_path / "run"
    train_run(_config(data, store), run)
    client = _client(store)
    tracked = client.get_run(_recorded_run_id(run))
    assert tracked.info.status == "FINISHED"
    assert client.get_experiment(tracked.info.experiment_id).name == "malt"
    assert [r.info.run_id for r in client.search_runs([tracked.info.experiment_id])] == \
        [tracked.info.run_id]
    assert {k: v for k, v in tracked.data.tags.items() if k.startswith("malt.")} == {
        "malt.version": malt.__version__, "malt.model": "mmoe", "malt.main_view": "last",
        "malt.run_dir": str(run)}

    saved = json.loads((run / "config.json").read_text())
    params = tracked.data.params
    assert set(params) == set(_leaves(saved))
    for key, value in _leaves(saved).items():
        assert params[key] == (value if isinstance(value, str) else json.dumps(value)), key
    assert (params["train.lr"], params["task.main"], params["model.name"],
            params["model.encoder.embed_dim"], params["task.aux"], params["train.grad_clip"]) \
        == ("0.003", "last", "mmoe", "8", '["first", "cat"]', "null")

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    logged_steps = [1, *range(2, STEPS, 2), STEPS]
    for key in ("loss/last", "loss/first", "loss/cat", "lr", "samples_per_s"):
        board = [(e.step, e.value) for e in events.Scalars(key)]
        history = _history(client, tracked.info.run_id, key)
        assert [step for step, _ in history] == [step for step, _ in board] == logged_steps
        assert [value for _, value in history] == \
            pytest.approx([value for _, value in board], rel=1e-6)  # TensorBoard keeps float32

    views = json.loads((run / "metrics.json").read_text())["views"]
    expected = {f"eval.{view}.{name}": value for view, values in views.items()
                for name, value in values.items() if name != "note"}
    evaluation = {k: v for k, v in tracked.data.metrics.items() if k.startswith("eval.")}
    assert set(evaluation) == set(expected) and \
        len(expected) == 2 * (len(fields(ViewMetrics)) - 1)
    for key, value in expected.items():
        assert evaluation[key] == value or math.isnan(evaluation[key]) and math.isnan(value)
    assert {step for step, _ in _history(client, tracked.info.run_id, "eval.last.gauc")} == \
        {STEPS}

    uploaded = {a.path for a in client.list_artifacts(tracked.info.run_id)}
    assert uploaded == {"config.json", "schema.json", "metrics.json", "log.txt",
                        "predictions.npz", "checkpoint.safetensors", "mlflow.json", "tb",
                        "reliability-last.png", "reliability-first.png"}
    assert {a.path for a in client.list_artifacts(tracked.info.run_id, "tb")} == \
        {f"tb/{p.name}" for p in (run / "tb").iterdir()}
    downloaded = client.download_artifacts(tracked.info.run_id, "metrics.json",
                                           str(tmp_path / "down"))
    assert Path(downloaded).read_bytes() == (run / "metrics.json").read_bytes()


def test_resume_continues_the_same_mlflow_run_and_overwrite_starts_another(data, tmp_path,
                                                                          monkeypatch):
    store, run = tmp_path / "mlruns", tmp_path / "run"
    config = _config(data, store, model="base", aux=())
    _stop_at(monkeypatch, 5)
    with pytest.raises(Interrupted):
        train_run(config, run)
    client = _client(store)
    first = _recorded_run_id(run)
    assert client.get_run(first).info.status == "KILLED"
    assert [s for s, _ in _history(client, first, "loss/last")] == [1, 2, 4]
    params = client.get_run(first).data.params
    assert params["train.device"] == "auto"

    config.train.device = "cpu"  # a resumed leg may change the device: MLflow keeps the first
    during: list[str] = []

    def watched_step(self, batch):
        during.append(client.get_run(first).info.status)
        return TRAIN_STEP(self, batch)

    monkeypatch.setattr(Trainer, "train_step", watched_step)
    train_run(config, run, resume=True)
    monkeypatch.setattr(Trainer, "train_step", TRAIN_STEP)
    assert set(during) == {"RUNNING"}
    assert _recorded_run_id(run) == first
    continued = client.get_run(first)
    assert continued.info.status == "FINISHED"
    assert continued.data.params == params
    assert [s for s, _ in _history(client, first, "loss/last")] == \
        [1, *range(2, STEPS, 2), STEPS]
    assert json.loads((run / "config.json").read_text())["train"]["device"] == "cpu"

    train_run(config, run, overwrite=True)
    second = _recorded_run_id(run)
    assert second != first and client.get_run(second).info.status == "FINISHED"
    experiment = continued.info.experiment_id
    assert {r.info.run_id for r in client.search_runs([experiment])} == {first, second}


def test_a_failed_run_is_marked_failed(data, tmp_path, monkeypatch):
    store, run = tmp_path / "mlruns", tmp_path / "run"

    def broken_step(self, batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(Trainer, "train_step", broken_step)
    with pytest.raises(RuntimeError, match="boom"):
        train_run(_config(data, store, model="base", aux=()), run)
    assert _client(store).get_run(_recorded_run_id(run)).info.status == "FAILED"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


def test_without_mlflow_the_error_says_how_to_install_it_and_nothing_is_touched(
        data, tmp_path, monkeypatch):
    store, run = tmp_path / "mlruns", tmp_path / "run"
    config = _config(data, store, model="base", aux=())
    config.train.tracker = "none"
    train_run(config, run)
    before = _tree(run)
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import mlflow...` now fails
    config.train.tracker = "mlflow"
    with pytest.raises(ConfigError, match=r"pip install 'malt\[mlflow\]'"):
        train_run(config, run, overwrite=True)
    assert _tree(run) == before
    with pytest.raises(ConfigError, match=r"pip install 'malt\[mlflow\]'"):
        train_run(config, tmp_path / "new")
    assert not (tmp_path / "new").exists() and not store.exists()


def test_a_refused_file_store_is_an_error_before_the_run_directory_is_touched(
        data, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")  # the user's own choice is kept
    with pytest.raises(ConfigError, match="MLflow tracking at file:.*MLFLOW_ALLOW_FILE_STORE"):
        train_run(_config(data, tmp_path / "mlruns", model="base", aux=()), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_deleted_experiment_is_an_error(data, tmp_path):
    store = tmp_path / "mlruns"
    client = _client(store)
    client.delete_experiment(client.create_experiment("gone"))
    config = _config(data, store, model="base", aux=(), mlflow_experiment="gone")
    with pytest.raises(ConfigError, match="experiment 'gone' is deleted"):
        train_run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_experiment_created_meanwhile_by_another_run_is_used(tmp_path):
    from malt.runs.tracking import _experiment_id

    store = tmp_path / "mlruns"
    client = _client(store)
    existing = client.create_experiment("shared")

    class LateClient(MlflowClient):
        """Sees the experiment only after trying to create it, as when two runs start."""

        looked = 0

        def get_experiment_by_name(self, name):
            self.looked += 1
            return None if self.looked == 1 else super().get_experiment_by_name(name)

    assert _experiment_id(LateClient(tracking_uri=store.as_uri()), "shared") == existing


def test_a_resumed_run_whose_mlflow_run_was_deleted_gets_a_new_one(data, tmp_path,
                                                                 monkeypatch):
    store, run = tmp_path / "mlruns", tmp_path / "run"
    _stop_at(monkeypatch, 3)
    with pytest.raises(Interrupted):
        train_run(_config(data, store, model="base", aux=()), run)
    monkeypatch.setattr(Trainer, "train_step", TRAIN_STEP)
    client = _client(store)
    first = _recorded_run_id(run)
    client.delete_run(first)
    train_run(_config(data, store, model="base", aux=()), run, resume=True)
    second = _recorded_run_id(run)
    assert second != first and client.get_run(second).info.status == "FINISHED"
    assert [s for s, _ in _history(client, second, "loss/last")] == \
        [*range(4, STEPS, 2), STEPS]  # the new MLflow run has the resumed leg's steps only


def test_params_are_the_flattened_config_and_long_values_are_cut(tmp_path):
    tree = {"seed": 1, "data": {"path": "d", "schema": "s" * 50},
            "task": {"aux": ["first", "cat"], "adm_alpha_per_action": {}},
            "model": {"encoder": {"embed_dim": 8, "padding_mask": True}}}
    assert run_params(tree, 20) == {
        "seed": "1", "data.path": "d", "data.schema": "s" * 17 + "...",
        "task.aux": '["first", "cat"]', "task.adm_alpha_per_action": "{}",
        "model.encoder.embed_dim": "8", "model.encoder.padding_mask": "true"}

    # MLflow refuses a param value over its limit (6000 characters in MLflow 3)
    store = tmp_path / "mlruns"
    config = RunConfig.from_dict({"data": {"schema": "s" * 7000},
                                  "train": {"tracker": "mlflow",
                                            "tracking_uri": store.as_uri()}})
    run = RunDir(tmp_path / "run")
    run.output.claim()
    tracker = open_tracker(config.train, run, resume=False, is_main=True)
    tracker.start(run, config)
    tracker.close("FINISHED")
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    schema = _client(store).get_run(_recorded_run_id(run.path)).data.params["data.schema"]
    assert len(schema) == MAX_PARAM_VAL_LENGTH and schema.endswith("s...")


def test_nan_evaluation_metrics_stay_nan(tmp_path):
    views = {"last": ViewMetrics(auc=0.5, gauc=math.nan, gauc_users=0, logloss=0.7,
                                 auc_weighted=0.5, gauc_weighted=math.nan)}
    metrics = evaluation_metrics(views)
    assert set(metrics) == {"eval.last.auc", "eval.last.gauc", "eval.last.gauc_users",
                            "eval.last.logloss", "eval.last.auc_weighted",
                            "eval.last.gauc_weighted", "eval.last.pcoc", "eval.last.ece"}
    assert metrics["eval.last.logloss"] == 0.7 and metrics["eval.last.gauc_users"] == 0
    store = tmp_path / "mlruns"
    config = RunConfig.from_dict({"train": {"tracker": "mlflow",
                                            "tracking_uri": store.as_uri()}})
    run = RunDir(tmp_path / "run")
    run.output.claim()
    tracker = open_tracker(config.train, run, resume=False, is_main=True)
    tracker.start(run, config)
    tracker.log_metrics(metrics, 9)
    stored = _client(store).get_run(_recorded_run_id(run.path)).data.metrics
    assert math.isnan(stored["eval.last.gauc"]) and stored["eval.last.auc"] == 0.5


def test_only_rank_0_tracks_but_every_rank_needs_mlflow(tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    config = RunConfig.from_dict({"train": {"tracker": "mlflow",
                                            "tracking_uri": store.as_uri()}})
    run = RunDir(tmp_path / "run")
    other = open_tracker(config.train, run, resume=False, is_main=False)
    other.start(run, config)
    other.log_metrics({"lr": 1.0}, 1)
    assert not store.exists() and not run.path.exists()
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match="pip install"):
        open_tracker(config.train, run, resume=False, is_main=False)


def test_the_default_store_is_mlruns_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri(None) == (tmp_path / "mlruns").as_uri()
    assert resolve_tracking_uri("http://tracking:5000") == "http://tracking:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert resolve_tracking_uri(None) == "sqlite:///elsewhere.db"


READ_BACK = """
import json, sys
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
try:
    run = MlflowClient(tracking_uri=sys.argv[1]).get_run(sys.argv[2])
except MlflowException as exc:
    print(json.dumps({"refused": str(exc)}))
else:
    print(json.dumps({"auc": run.data.metrics["eval.last.auc"]}))
"""


@pytest.mark.parametrize("allow", [None, "true"])
def test_reading_the_file_store_back_takes_mlflows_opt_in_as_documented(data, tmp_path, allow):
    # docs/training.md "Reading the store back": MLflow 3 refuses its file store in any process
    # that has not opted in, including the one reading malt's store back.
    store, run = tmp_path / "mlruns", tmp_path / "run"
    train_run(_config(data, store), run)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_ALLOW_FILE_STORE"}
    if allow:
        env["MLFLOW_ALLOW_FILE_STORE"] = allow
    read = json.loads(subprocess.run(
        [sys.executable, "-c", READ_BACK, store.as_uri(), _recorded_run_id(run)], env=env,
        capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    if allow:
        auc = json.loads((run / "metrics.json").read_text())["views"]["last"]["auc"]
        assert read == {"auc": pytest.approx(auc)}
    else:
        assert "MLFLOW_ALLOW_FILE_STORE=true" in read["refused"]
