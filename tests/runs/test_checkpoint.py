"""A run directory is data: no command or API call runs code planted in a checkpoint, the old
pickled format is refused with what to do, and converting it (on request) keeps the model."""

from __future__ import annotations

import random
import re
import shutil

import numpy as np
import pytest
import torch
from torch.torch_version import TorchVersion

import malt
from malt.cli import main
from malt.errors import ConfigError
from malt.eval.predictions import Predictions
from malt.jobs.train import train_run
from malt.runs.checkpoint import (
    CHECKPOINT_KIND,
    LEGACY_NAME,
    TrainState,
    convert_legacy_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.tensor_tree import read_tree, write_tree
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS


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
    """A copy of `run` whose checkpoint is in the pickled format of earlier malt versions,
    with `extra` added to its config."""
    shutil.copytree(run, out)
    pickle_checkpoint(out, extra=extra)
    return out


def pickle_checkpoint(run, *, extra=None, change=None):
    """Replace the checkpoint of `run` by one in the pickled format of earlier malt versions
    (`torch.save` of the payload, numpy's random state as a tuple with an array), with `extra`
    added to its config and `change` applied to the payload."""
    payload = read_tree(run / "checkpoint.safetensors", kind=CHECKPOINT_KIND)
    state = payload["rng"]["numpy"]
    payload["rng"]["numpy"] = (state["algorithm"], state["keys"].numpy().astype(np.uint32),
                               state["position"], state["has_gauss"], state["cached_gaussian"])
    if extra is not None:
        payload["config"]["note"] = extra
    if change is not None:
        change(payload)
    torch.save(payload, run / LEGACY_NAME)
    (run / "checkpoint.safetensors").unlink()


def small_checkpoint(path):
    """A checkpoint of a tiny model, saved as the trainer saves one."""
    save_checkpoint(path, model=torch.nn.Linear(3, 2), optimisation_state={"step": 4},
                    state=SMALL_STATE, generator=torch.Generator().manual_seed(3),
                    config={"seed": 3})


SMALL_STATE = TrainState(day=1, step_in_day=2, global_step=7, seconds=1.5)


def small_legacy_run(run, **pickled):
    """A run directory holding only a pickled `small_checkpoint` (see `pickle_checkpoint`)."""
    small_checkpoint(run / "checkpoint.safetensors")
    pickle_checkpoint(run, **pickled)
    return run


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


def test_a_checkpoint_restores_every_global_random_state(tmp_path):
    random.gauss(0, 1)
    np.random.standard_normal()  # each leaves the second of a pair of Gaussians for later
    small_checkpoint(tmp_path / "checkpoint.safetensors")

    def draws():
        return (random.gauss(0, 1), random.random(), np.random.standard_normal(),
                np.random.rand(2).tolist(), torch.rand(2).tolist())

    expected = draws()
    assert draws() != expected
    set_rng_state(load_checkpoint(tmp_path / "checkpoint.safetensors").rng)
    assert draws() == expected


@pytest.mark.cuda
def test_a_checkpoint_loaded_to_a_gpu_restores_every_random_state(tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    small_checkpoint(path)
    expected = torch.rand(2).tolist(), torch.rand(2, device="cuda").tolist()
    torch.rand(2), torch.rand(2, device="cuda")
    checkpoint = load_checkpoint(path, map_location="cuda")  # as a run resumed on a GPU loads it
    assert checkpoint.model["weight"].is_cuda
    set_rng_state(checkpoint.rng)
    torch.Generator().set_state(checkpoint.generator)
    assert (torch.rand(2).tolist(), torch.rand(2, device="cuda").tolist()) == expected
    # One written without a GPU holds no CUDA state: the GPU's own state is kept.
    set_rng_state({**checkpoint.rng, "cuda": None})


def test_a_run_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(ConfigError, match=f"^{re.escape(str(tmp_path))} has no checkpoint "
                                          r"\(checkpoint.safetensors\)$"):
        load_checkpoint(tmp_path / "checkpoint.safetensors")


def test_a_run_with_only_a_pickled_checkpoint_is_told_how_to_convert_it(tmp_path):
    (tmp_path / LEGACY_NAME).write_bytes(b"never read")
    with pytest.raises(ConfigError) as caught:
        load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert str(caught.value) == (
        f"{tmp_path} holds a checkpoint in the format of earlier malt versions ({LEGACY_NAME}, "
        "a Python pickle, which can run code when it is loaded), so malt does not load it. If "
        f"you trust where this run came from, convert it once: malt upgrade-run {tmp_path} "
        "--trust-pickle")


@pytest.mark.parametrize("change, reason", [
    (lambda tree: tree["model"].update(weight="text"), "its model is not a table of tensors"),
    (lambda tree: tree["model"].update({1: torch.ones(1)}),
     "its model is not a table of tensors"),
    (lambda tree: tree.update(generator=[1]), "its generator state is not a tensor"),
    (lambda tree: tree.update(rng=None), "its rng is not a table"),
    (lambda tree: tree.update(config="seed 3"), "its config is not a table"),
    (lambda tree: tree["state"].update(day="one"),
     "checkpoint state.day = 'one': expected an integer"),
    (lambda tree: tree.pop("config"), "'config'"),
], ids=["model value", "model key", "generator", "rng", "config", "state", "missing"])
def test_a_checkpoint_holding_the_wrong_things_is_refused_saying_what(tmp_path, change, reason):
    path = tmp_path / "checkpoint.safetensors"
    small_checkpoint(path)
    tree = read_tree(path, kind=CHECKPOINT_KIND)
    change(tree)
    write_tree(path, tree, kind=CHECKPOINT_KIND)
    with pytest.raises(ConfigError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == f"{path} is damaged or not a malt checkpoint ({reason})"


@pytest.mark.parametrize("version, refused", [("2.5.1", True), ("2.6.0", False)])
def test_conversion_needs_a_torch_whose_restricted_loader_is_safe(tmp_path, monkeypatch,
                                                                  version, refused):
    run = small_legacy_run(tmp_path)
    monkeypatch.setattr(torch, "__version__", TorchVersion(version))
    if refused:
        with pytest.raises(ConfigError) as caught:
            convert_legacy_checkpoint(run, run / "checkpoint.safetensors")
        assert str(caught.value) == (
            f"converting {run / LEGACY_NAME} needs torch >= 2.6 (earlier versions' restricted "
            f"loader can be made to run code); this is {version}")
        assert not (run / "checkpoint.safetensors").exists()
    else:
        convert_legacy_checkpoint(run, run / "checkpoint.safetensors")
        assert load_checkpoint(run / "checkpoint.safetensors").state == SMALL_STATE


def test_a_pickled_checkpoint_saved_on_a_gpu_converts_without_one(tmp_path, monkeypatch):
    # torch.save records each tensor's device, and loading puts it back there unless told.
    with monkeypatch.context() as saved_on_gpu:
        saved_on_gpu.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        run = small_legacy_run(tmp_path)
    convert_legacy_checkpoint(run, run / "checkpoint.safetensors")
    model = load_checkpoint(run / "checkpoint.safetensors").model
    assert model.keys() == {"weight", "bias"}


def test_conversion_stays_restricted_when_the_environment_lifts_torchs_default(tmp_path,
                                                                              monkeypatch):
    # This variable (set for some other program) turns torch.load's default into a full
    # unpickler: the conversion must not rely on the default.
    marker = tmp_path / "code-ran"
    run = small_legacy_run(tmp_path / "run", extra=Planted(marker))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(ConfigError, match="cannot be converted"):
        convert_legacy_checkpoint(run, run / "checkpoint.safetensors")
    assert not marker.exists()


@pytest.mark.parametrize("damage, reason", [
    ("planted", "WeightsUnpickler error: Unsupported global: GLOBAL "),
    ("empty", "EOFError"),  # torch's error says nothing: its type does
    ("not a checkpoint", "Invalid magic number; corrupt file?"),
    ("bad state", "checkpoint state.day = 'one': expected an integer"),
])
def test_a_pickled_checkpoint_that_cannot_be_converted_says_why_in_one_line(tmp_path, damage,
                                                                           reason):
    marker = tmp_path / "code-ran"
    run = small_legacy_run(
        tmp_path / "run", extra=Planted(marker) if damage == "planted" else None,
        change=(lambda p: p["state"].update(day="one")) if damage == "bad state" else None)
    legacy = run / LEGACY_NAME
    if damage in ("empty", "not a checkpoint"):
        legacy.write_bytes({"empty": b"", "not a checkpoint": b"\x80\x02N."}[damage])
    with pytest.raises(ConfigError) as caught:
        convert_legacy_checkpoint(run, run / "checkpoint.safetensors")
    message = str(caught.value)
    # Not torch's advice to load with weights_only=False: that is what runs planted code.
    assert message.startswith(f"{legacy} cannot be converted: {reason}")
    assert "\n" not in message and "weights_only" not in message
    assert not (run / "checkpoint.safetensors").exists() and not marker.exists()
