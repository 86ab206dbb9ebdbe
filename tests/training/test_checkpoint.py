"""A run directory is data: no command or API call runs code planted in a checkpoint, the old
pickled format is refused with what to do, and converting it (on request) keeps the model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import malt
from mac_data import write_random_dataset
from malt.cli import main
from malt.errors import ConfigError
from malt.eval.job import train_run
from malt.eval.predictions import Predictions
from malt.training.checkpoint import CHECKPOINT_KIND, LEGACY_NAME, load_checkpoint
from malt.training.config import RunConfig
from malt.training.run_dir import RunDir
from malt.training.tensor_tree import read_tree
from model_configs import SMALL_BLOCKS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_random_dataset(tmp_path_factory.mktemp("checkpoint") / "data", days=3,
                                rows=200)


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished BASE run on `data`."""
    out = tmp_path_factory.mktemp("checkpoint") / "run"
    train_run(RunConfig.from_dict({"seed": 5, "data": {"path": str(data)},
                                   "train": {"batch_size": 64},
                                   "model": {"name": "base", **SMALL_BLOCKS}}), out)
    return out


class Planted:
    """Unpickling this creates `marker`: the proof that a load ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def legacy_copy(run, out, *, extra=None):
    """A copy of `run` whose checkpoint is in the pickled format of earlier malt versions
    (`torch.save` of the payload, numpy's random state as a tuple with an array), with
    `extra` added to its config."""
    shutil.copytree(run, out)
    payload = read_tree(out / "checkpoint.safetensors", kind=CHECKPOINT_KIND)
    state = payload["rng"]["numpy"]
    payload["rng"]["numpy"] = (state["algorithm"], state["keys"].numpy().astype(np.uint32),
                               state["position"], state["has_gauss"], state["cached_gaussian"])
    if extra is not None:
        payload["config"]["note"] = extra
    torch.save(payload, out / LEGACY_NAME)
    (out / "checkpoint.safetensors").unlink()
    return out


@pytest.fixture
def planted(finished, tmp_path):
    marker = tmp_path / "code-ran"
    return legacy_copy(finished, tmp_path / "planted", extra=Planted(marker)), marker


@pytest.mark.parametrize("command", [
    ["predict", "--run", "{run}", "--data", "{data}/test", "--out", "{tmp}/p.parquet"],
    ["eval", "--run", "{run}", "--data", "{data}"],
    ["export", "--run", "{run}", "--format", "torchscript", "--out", "{tmp}/m.pt"],
    ["train", "--resume", "--out", "{run}"],
    ["upgrade-run", "{run}"],
    ["upgrade-run", "{run}", "--trust-pickle"],
])
def test_no_command_runs_code_planted_in_a_checkpoint(planted, data, tmp_path, command, capsys):
    run, marker = planted
    if command[0] == "train":
        (run / "metrics.json").unlink()  # an unfinished run, so that resuming loads it
    args = [a.format(run=run, data=data, tmp=tmp_path) for a in command]
    assert main(args) == 3
    assert not marker.exists()
    error = capsys.readouterr().err
    assert "Traceback" not in error
    if command[0] == "upgrade-run":
        assert ("--trust-pickle" in error) != ("--trust-pickle" in command)
        assert (run / LEGACY_NAME).is_file() and not (run / "checkpoint.safetensors").exists()
    else:
        assert f"malt upgrade-run {run} --trust-pickle" in error


def test_the_api_runs_no_code_planted_in_a_checkpoint(planted, data):
    run, marker = planted
    with pytest.raises(ConfigError, match="pickle"):
        malt.load_run(run).predict(data / "test" / "test.parquet")
    assert not marker.exists()


def test_a_pickle_under_the_new_name_is_refused(finished, tmp_path):
    run = tmp_path / "disguised"
    shutil.copytree(finished, run)
    marker = tmp_path / "code-ran"
    torch.save({"model": Planted(marker)}, run / "checkpoint.safetensors")
    assert main(["export", "--run", str(run), "--format", "torchscript",
                 "--out", str(tmp_path / "m.pt")]) == 3
    assert not marker.exists()


def test_a_checkpoint_that_does_not_fit_the_run_is_refused_on_resume(finished, data, tmp_path):
    run = tmp_path / "other"
    shutil.copytree(finished, run)
    (run / "metrics.json").unlink()
    other = train_run(RunConfig.from_dict({"data": {"path": str(data)},
                                           "train": {"batch_size": 64},
                                           "model": {"name": "moae", **SMALL_BLOCKS}}),
                      tmp_path / "moae")
    assert other is not None
    shutil.copy(tmp_path / "moae" / "checkpoint.safetensors", run / "checkpoint.safetensors")
    with pytest.raises(ConfigError, match="does not fit this run"):
        train_run(RunDir(run).load_config(), run, resume=True)


def test_a_converted_checkpoint_scores_as_the_original(finished, data, tmp_path, capsys):
    run = legacy_copy(finished, tmp_path / "old")
    assert main(["upgrade-run", str(tmp_path), "--trust-pickle"]) == 0
    assert f"converted {run / 'checkpoint.safetensors'}" in capsys.readouterr().out
    assert not (run / LEGACY_NAME).exists()
    original, converted = (load_checkpoint(r / "checkpoint.safetensors")
                           for r in (finished, run))
    assert converted.model.keys() == original.model.keys()
    assert all(torch.equal(converted.model[k], original.model[k]) for k in original.model)
    assert converted.state == original.state
    assert main(["eval", "--run", str(run), "--data", str(data)]) == 0
    saved = Predictions.load(RunDir(finished).predictions_file)
    scored = malt.load_run(run).predict(data / "test" / "test.parquet")
    np.testing.assert_allclose(scored["p_last"].to_numpy(), saved.probs[:, 0], atol=1e-6)


def test_a_resumed_converted_run_restores_every_random_state(finished, tmp_path):
    run = legacy_copy(finished, tmp_path / "old")
    RunDir(run).upgrade_checkpoint()
    original, converted = (load_checkpoint(r / "checkpoint.safetensors")
                           for r in (finished, run))
    assert torch.equal(converted.generator, original.generator)
    assert converted.rng["python"] == original.rng["python"]
    assert torch.equal(converted.rng["numpy"]["keys"], original.rng["numpy"]["keys"])
    assert torch.equal(converted.rng["torch"], original.rng["torch"])
