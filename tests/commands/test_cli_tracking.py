"""`malt train --tracker mlflow`: the default store, and a resume from another directory."""

import json

from mlflow.tracking import MlflowClient

from malt.cli import main
from malt.training.trainer import Trainer
from support.training_steps import stop_at_step


def test_the_default_store_is_found_again_by_a_resume_from_elsewhere(random_mac, tmp_path,
                                                                      monkeypatch):
    for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    original = stop_at_step(monkeypatch, 2)
    (tmp_path / "first").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    args = ["train", "--data", str(random_mac), "--model", "base", "--batch-size", "128",
            "--tracker", "mlflow", "--mlflow-experiment", "cli", "--out", "runs/x"]
    assert main(args) == 130
    run = tmp_path / "first" / "runs" / "x"
    record = json.loads((run / "mlflow.json").read_text())
    store = tmp_path / "first" / "mlruns"
    assert record["tracking_uri"] == store.as_uri()

    monkeypatch.setattr(Trainer, "train_step", original)
    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "second")
    assert main(["train", "--resume", "--out", str(run)]) == 0
    assert not (tmp_path / "second" / "mlruns").exists()
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("cli")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [record["run_id"]]
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.params["train.tracker"] == "mlflow"
    # 2 training days of 300 rows at batch 128: 6 steps, logged at the first and the last
    assert sorted(m.step for m in client.get_metric_history(record["run_id"], "loss/last")) \
        == [1, 6]


def test_an_unknown_tracker_is_an_error(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--tracker",
                 "wandb"]) == 3
    assert "--tracker = 'wandb': expected one of 'none', 'mlflow'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_tracker_flags_exist_with_help(capsys):
    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    shown = " ".join(capsys.readouterr().out.split())
    assert "--tracker {none,mlflow}" in shown and "--tracking-uri TRACKING_URI" in shown
    assert "--mlflow-experiment MLFLOW_EXPERIMENT" in shown and "(default: malt)" in shown
