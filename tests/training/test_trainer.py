import json
import math
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from malt.cli import main
from malt.errors import ConfigError, Interrupted
from malt.eval.predictions import Predictions
from malt.jobs.train import train_run
from malt.runs.checkpoint import CHECKPOINT_KIND, TrainState, load_checkpoint
from malt.runs.config import RunConfig
from malt.runs.record import RunMetrics
from malt.runs.tensor_tree import read_tree, write_tree
from malt.training import aggregation
from malt.training.distributed import World
from malt.training.trainer import Trainer
from support.mac_data import write_random_dataset
from support.run_parity import assert_same_run
from support.training_steps import stop_at_step


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("trainer") / "data", days=4, rows=301)


def _config(data: Path, model="mmoe", aux=("first", "cat"), **train) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 7, "data": {"path": str(data)},
        "task": {"main": "last", "aux": list(aux)},
        "train": {"batch_size": 64, "log_every": 2, **train},
        "model": {"name": model, "encoder": {"embed_dim": 8, "attention_heads": 2},
                  "expert": {"dim": 16}, "tower": {"dims": [8, 4]}},
    })


def test_run_directory_holds_config_metrics_predictions_and_logs(data, tmp_path):
    metrics = train_run(_config(data), tmp_path / "run")
    run = tmp_path / "run"
    assert RunConfig.from_dict(json.loads((run / "config.json").read_text())) == _config(data)
    saved = RunMetrics.from_dict(json.loads((run / "metrics.json").read_text()))
    assert saved == metrics
    assert set(saved.views) == {"last", "first"}
    for view in saved.views.values():
        assert 0 <= view.auc <= 1 and view.logloss > 0
    assert saved.train.steps == 3 * 5  # 3 training days of 301 rows at batch 64
    predictions = Predictions.load(run / "predictions.npz")
    assert predictions.probs.shape == (301, 2) and predictions.views == ("last", "first")
    assert load_checkpoint(run / "checkpoint.safetensors").state.finished
    assert any((run / "tb").iterdir())
    assert "finished day" in (run / "log.txt").read_text()


def test_a_diverging_run_stops_at_the_first_non_finite_logged_loss(data, tmp_path, monkeypatch):
    original = Trainer.train_step
    steps = []

    def overflowing_step(self, batch):
        report = original(self, batch)
        steps.append(self.state.global_step)
        if self.state.global_step >= 5 and report.losses:
            report.losses[self.task.main] = float("nan")
        return report

    monkeypatch.setattr(Trainer, "train_step", overflowing_step)
    with pytest.raises(ConfigError, match=r"training diverged at step 6 .*loss last nan.*--lr"):
        train_run(_config(data), tmp_path / "run")
    assert steps[-1] == 5  # logged every 2 steps: step 5 is the first logged after the NaN
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize("broken", [1, 3, 4])  # the message names at most three
def test_a_day_that_ends_with_non_finite_parameters_is_not_checkpointed(data, tmp_path,
                                                                        monkeypatch, broken):
    original = Trainer.train_step
    names = []

    def overflowing_step(self, batch):
        report = original(self, batch)
        if self.state.global_step == 4:  # day 1's last step (5 steps a day); none is logged
            for name, parameter in list(self.model.named_parameters())[:broken]:
                parameter.data.view(-1)[0] = float("inf")
                names.append(name)
        return report

    monkeypatch.setattr(Trainer, "train_step", overflowing_step)
    with pytest.raises(ConfigError) as caught:
        train_run(_config(data, log_every=1000), tmp_path / "run")
    listed = ", ".join(names[:3]) + (" ..." if broken > 3 else "")
    assert str(caught.value).startswith(f"training diverged at step 5 (day 1 of 3): parameters "
                                        f"{listed} are not finite. Lower the learning rate")
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


def _diverge_on_one_rank(rank: int, store: str, run: str) -> None:
    """Rank `rank` of two checking its logged losses, where only rank 1's are not finite."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                                         world_size=2, timeout=timedelta(seconds=60))
    try:
        trainer = Trainer.__new__(Trainer)  # only what the check reads
        trainer.world, trainer.device = World(rank=rank, size=2), torch.device("cpu")
        trainer.state, trainer.train_days = TrainState(day=1, global_step=9), [None] * 3
        trainer.run = SimpleNamespace(path=Path(run))
        trainer._refuse_divergence({"last": 0.5, "first": 0.25})  # finite everywhere
        losses = [{"last": 0.5, "first": 0.25}, {"last": math.nan, "first": -math.inf}][rank]
        with pytest.raises(ConfigError) as caught:
            trainer._refuse_divergence(losses)
        where = ["on another process", "last nan, first -inf"][rank]
        assert str(caught.value).startswith(f"training diverged at step 9 (day 2 of 3): loss "
                                            f"{where}. Lower the learning rate")
    finally:
        torch.distributed.destroy_process_group()


def test_every_rank_stops_when_one_ranks_loss_is_not_finite(tmp_path):
    # Otherwise the ranks still training would wait forever for the one that stopped.
    # Rank 0 runs in this process (so that coverage tools see the check run), rank 1 beside it.
    args = (str(tmp_path / "store"), str(tmp_path / "run"))
    other = torch.multiprocessing.get_context("spawn").Process(target=_diverge_on_one_rank,
                                                               args=(1, *args))
    other.start()
    try:
        _diverge_on_one_rank(0, *args)
    finally:
        other.join(timeout=120)
        if other.is_alive():
            other.kill()
            other.join()
    assert other.exitcode == 0  # rank 1's own checks passed


def test_the_day_end_callback_runs_after_each_days_checkpoint(data, tmp_path):
    checkpoint = tmp_path / "run" / "checkpoint.safetensors"
    days_done: list[int] = []
    train_run(_config(data), tmp_path / "run",
              day_end=lambda: days_done.append(load_checkpoint(checkpoint).state.day))
    assert days_done == [1, 2, 3]  # after day d's checkpoint: d days done


@pytest.mark.parametrize("stop_after", [3, 5])  # inside a day, and exactly at a day boundary
def test_interrupted_run_resumes_to_identical_numbers(data, tmp_path, monkeypatch, stop_after):
    reference = train_run(_config(data, shuffle=True), tmp_path / "whole")

    original = stop_at_step(monkeypatch, stop_after)
    with pytest.raises(Interrupted):
        train_run(_config(data, shuffle=True), tmp_path / "cut")
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.safetensors").state
    assert state.global_step == stop_after and not state.finished
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = train_run(_config(data, shuffle=True), tmp_path / "cut", resume=True)
    assert resumed.views == reference.views
    np.testing.assert_array_equal(Predictions.load(tmp_path / "cut" / "predictions.npz").probs,
                                  Predictions.load(tmp_path / "whole" / "predictions.npz").probs)


def test_row_wise_adam_trains_the_run_dense_adam_trains(data, tmp_path):
    rows = train_run(_config(data, model="base", aux=()), tmp_path / "rows")
    dense = train_run(_config(data, model="base", aux=(), table_optimizer="dense"),
                      tmp_path / "dense")
    lazy = train_run(_config(data, model="base", aux=(), table_optimizer="lazy"),
                     tmp_path / "lazy")
    probs = {name: Predictions.load(tmp_path / name / "predictions.npz").probs
             for name in ("rows", "dense", "lazy")}
    np.testing.assert_allclose(probs["rows"], probs["dense"], rtol=0, atol=1e-4)
    assert np.abs(probs["lazy"] - probs["dense"]).max() > 1e-3  # other numbers: not a no-op
    assert rows.views["last"].auc == pytest.approx(dense.views["last"].auc, abs=1e-3)
    assert lazy.train.steps == rows.train.steps
    tables = load_checkpoint(tmp_path / "rows" / "checkpoint.safetensors").optimisation
    assert "pending" in tables["optimizers"][1]["state"][0]


def test_tensorboard_gets_the_first_and_last_step_and_the_evaluation(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics = train_run(_config(data, log_every=1000), tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/last")] == [1, 15]
    gauc = events.Scalars("eval/last/gauc")
    assert [e.step for e in gauc] == [15]
    assert gauc[0].value == pytest.approx(metrics.views["last"].gauc)


def test_a_resumed_runs_time_covers_every_leg(data, tmp_path, monkeypatch):

    original = stop_at_step(monkeypatch, 4)
    with pytest.raises(Interrupted):
        train_run(_config(data), tmp_path / "cut")
    monkeypatch.setattr(Trainer, "train_step", original)
    path = tmp_path / "cut" / "checkpoint.safetensors"
    payload = read_tree(path, kind=CHECKPOINT_KIND)
    assert payload["state"]["seconds"] > 0
    assert 0 < payload["state"]["data_wait_seconds"] < payload["state"]["seconds"]
    payload["state"]["seconds"] = 1000.0  # as if the first leg had taken 1000 s
    payload["state"]["data_wait_seconds"] = 400.0  # of which 400 s waiting for batches
    write_tree(path, payload, kind=CHECKPOINT_KIND)
    resumed = train_run(_config(data), tmp_path / "cut", resume=True)
    assert 1000 < resumed.train.seconds < 1000 + 300
    assert 400 < resumed.train.data_wait_seconds < resumed.train.seconds - 600
    assert "waiting for data: " in resumed.train.summary()


@pytest.mark.parametrize("method, variant, weighting", [
    ("gcs", "paper", "sigmoid"), ("gcs", "paper", "clip"), ("gcs", "paper", "binary"),
    ("gcs", "reference", "sigmoid"), ("pcgrad", "paper", "sigmoid"),
    ("pcgrad", "reference", "sigmoid")])
def test_gradient_methods_train(data, tmp_path, method, variant, weighting):
    metrics = train_run(_config(data, grad_method=method, grad_variant=variant,
                                gcs_weighting=weighting), tmp_path / "r")
    assert np.isfinite(metrics.views["last"].logloss)


def test_gcs_weighting_needs_the_paper_gcs():
    with pytest.raises(ConfigError, match="gcs_weighting"):
        _config(Path("d"), grad_method="pcgrad", gcs_weighting="clip")


def test_unknown_flag_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "x", "--out", "y", "--learning_rate", "0.1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --learning_rate" in capsys.readouterr().err


def test_unknown_config_key_names_the_closest_one(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[train]\nbatchsize = 128\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 3
    assert "did you mean 'batch_size'" in capsys.readouterr().err


def test_flags_override_the_config_file(data, tmp_path):
    from malt.cli import build_parser
    from malt.commands._options import resolve_config

    config = tmp_path / "run.yaml"
    config.write_text("seed: 3\ntrain:\n  lr: 0.1\n  batch_size: 32\nmodel:\n  name: ple\n")
    args = build_parser().parse_args(["train", "--config", str(config), "--lr", "0.01",
                                      "--out", "o", "--model-option", "encoder.padding_mask=false"])
    resolved = resolve_config(args)
    assert (resolved.seed, resolved.train.lr, resolved.train.batch_size) == (3, 0.01, 32)
    assert resolved.model == {"name": "ple", "release_defaults": False,
                              "encoder": {"padding_mask": False}}


def test_train_prints_the_step_plan_and_resolves_an_auto_batch(data, tmp_path, capsys):
    # 3 training days of 301 rows: auto takes 256 (2 steps a day), far from 200 steps
    out = tmp_path / "r"
    assert main(["train", "--data", str(data), "--model", "base", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "one pass: 6 optimiser steps of 256 rows (903 rows over 3 training days)\n" \
           "warning: fewer than 200 steps under-trains a model (--batch-size 4 gives 200;" \
           in printed
    assert json.loads((out / "config.json").read_text())["train"]["batch_size"] == 256
    assert "one pass: 6 optimiser steps" in (out / "log.txt").read_text()
    assert RunMetrics.from_dict(json.loads((out / "metrics.json").read_text())).train.steps == 6


def test_a_run_directory_given_relative_to_the_working_directory(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", str(data), "--model", "base", "--batch-size", "128",
                 "--out", "runs/x"]) == 0
    run = tmp_path / "runs" / "x"
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.json", "log.txt",
                                                "checkpoint.safetensors", "predictions.npz"}
    assert not (run / "runs").exists()
    assert main(["eval", "--run", "runs/x"]) == 0


def test_existing_run_is_not_overwritten(data, tmp_path, capsys):
    args = ["train", "--data", str(data), "--model", "base", "--batch-size", "128",
            "--out", str(tmp_path / "r")]
    assert main(args) == 0
    assert main(args) == 3
    assert "already holds a malt run" in capsys.readouterr().err


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


def test_overwrite_of_a_directory_malt_did_not_write_deletes_nothing(data, tmp_path, capsys):
    out = tmp_path / "v"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "important.txt").write_text("x")
    before = _tree(out)
    for data_dir in ("/nonexistent", str(data)):  # the data check, then the directory check
        assert main(["train", "--data", data_dir, "--out", str(out), "--overwrite"]) == 3
        assert _tree(out) == before
    error = capsys.readouterr().err
    assert "not a malt output" in error and "config.json" in error and "important.txt" in error
    assert main(["train", "--data", str(data), "--out", str(out)]) == 3
    assert _tree(out) == before


def test_overwrite_removes_only_the_runs_own_files(data, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["train", "--data", str(data), "--model", "base", "--batch-size", "128",
            "--out", str(out)]
    assert main(args) == 0
    written = set(_tree(out))
    assert {"config.json", "metrics.json", "checkpoint.safetensors", "log.txt"} <= written
    (out / "notes.md").write_text("my notes")
    assert main([*args, "--overwrite"]) == 3
    assert "notes.md" in capsys.readouterr().err and set(_tree(out)) == written | {"notes.md"}
    (out / "notes.md").unlink()
    before = _tree(out)
    for bad in (["--data", "/nonexistent"], ["--model", "nope"], ["--aux", "dda"]):
        assert main([*args, "--overwrite", *bad]) == 3  # checked before anything is removed
        assert _tree(out) == before
    assert main([*args, "--overwrite", "--model", "mmoe", "--aux", "first"]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["name"] == "mmoe"


@pytest.mark.slow
# uncertainty: its log-variances' gradients are averaged over the ranks outside DDP. dwa: its
# period means are averaged over the ranks; periods of 2 steps move the weights from step 5 of 15
# on, through periods that hold a day's uneven last step (23/22 rows), where each rank's mean
# loss must count by its rows; τ = 0.2 makes the weights sensitive enough that counting the
# ranks alike moves the scores by 1.4e-5. gcs-ema and upgrad: their per-task gradients are
# averaged before the similarity or the aggregation. (A grad method without any auxiliary term
# is refused by the run config.)
@pytest.mark.parametrize("method, options", [
    ("none", {}), ("gcs", {}), ("uncertainty", {}),
    ("dwa", {"dwa_period": 2, "dwa_temperature": 0.2}), ("gcs-ema", {}),
    pytest.param("upgrad", {}, marks=pytest.mark.skipif(
        bool(aggregation.missing_packages("upgrad")), reason="needs malt[aux]"))])
def test_two_process_ddp_matches_one_process(data, tmp_path, method, options):
    config = _config(data, grad_method=method, **options)
    train_run(config, tmp_path / "single")
    (tmp_path / "cfg.json").write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node", "2", "-m", "malt", "train", "--config",
                    str(tmp_path / "cfg.json"), "--device", "cpu", "--out",
                    str(tmp_path / "ddp")], check=True, env=env, timeout=300)
    # The last step of each 301-row day splits 23/22 over the ranks (see run_parity).
    assert_same_run(tmp_path / "ddp", tmp_path / "single", world_size=2)


@pytest.mark.cuda
# The GPU's kernels sum in other orders than the CPU's (Adam can amplify that where a gradient
# is near zero), and bf16 autocast (--precision bf16) keeps 8 bits of mantissa: scores move by
# up to a thousandth, a few hundredths under bf16; a broken GPU path (untrained, NaN, wrong rows)
# by far more.
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-3), ("bf16", 5e-2)])
def test_a_run_on_a_gpu_scores_as_the_run_on_the_cpu(data, tmp_path, precision, tolerance):
    train_run(_config(data, device="cpu"), tmp_path / "cpu")
    train_run(_config(data, device="cuda", precision=precision), tmp_path / "gpu")
    np.testing.assert_allclose(Predictions.load(tmp_path / "gpu" / "predictions.npz").probs,
                               Predictions.load(tmp_path / "cpu" / "predictions.npz").probs,
                               atol=tolerance, rtol=0)


def test_eval_prints_metrics_rescores_and_compares_with_a_baseline(data, tmp_path, capsys):
    base = tmp_path / "base"
    metrics = train_run(_config(data), tmp_path / "run")
    train_run(_config(data, model="base", aux=()), base)
    capsys.readouterr()
    assert main(["eval", "--run", str(tmp_path / "run"), "--baseline", str(base)]) == 0
    shown = capsys.readouterr().out
    assert f"{metrics.views['last'].auc:.4f}" in shown
    assert "verdict: " in shown
    assert f"gain over {base} on 'last' by linear/last:" in shown and "[1, 1.5)" in shown
    assert main(["eval", "--run", str(tmp_path / "run"), "--data", str(data)]) == 0
    assert f"{metrics.views['last'].gauc:.4f}" in capsys.readouterr().out
