"""Ctrl-C at points of every command's work: exit 130, no traceback, the resume hint where the
work can be resumed, and outputs left whole or absent.

Each case runs the command in its own session with `faults.py`, which sends SIGINT to the
session's process group (as a terminal's Ctrl-C does) when the command reaches the point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from malt.cli import main
from malt.data import prepare
from malt.errors import Interrupted
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS

FAULTS = Path(__file__).parent / "support" / "faults.py"
pytestmark = pytest.mark.slow

TRAIN = ["--model", "base", "--batch-size", "64", "--seed", "3",
         "--model-option", "encoder.embed_dim=8", "--model-option", "encoder.attention_heads=2",
         "--model-option", "tower.dims=[8, 4]"]


def faulted(*args, at: tuple[str, int], action: str) -> subprocess.CompletedProcess:
    """`malt args` in a session of its own, doing `action` (see faults.py) the n-th time it
    reaches the point `at` = (point, n)."""
    command = [sys.executable, str(FAULTS), at[0], str(at[1]), action, "--", *map(str, args)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # a study's workers too
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def interrupted(*args, at: tuple[str, int], action: str = "interrupt"
                ) -> subprocess.CompletedProcess:
    """`malt args`, interrupted (Ctrl-C, or SIGTERM with `action="terminate"`) the n-th time it
    reaches the point `at`: it must end with exit 130 and no traceback."""
    result = faulted(*args, at=at, action=action)
    assert result.returncode == 130, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def ok(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "malt", *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two training days of 200 rows (4 steps of 64 rows each) and a test day, prepared."""
    data = write_random_dataset(tmp_path_factory.mktemp("interrupts") / "data", days=3,
                                rows=200)
    prepare(data)
    return data


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("interrupts") / "run"
    train_run(RunConfig.from_dict({"seed": 1, "data": {"path": str(data)},
                                   "train": {"batch_size": 64},
                                   "model": {"name": "base", **SMALL_BLOCKS}}), out)
    return out


# 8 steps: step 3 is mid-day, step 8 the last step of the pass.
@pytest.mark.parametrize("at", [("step", 3), ("step", 8), ("evaluate", 1)])
def test_train_stops_with_a_checkpoint_and_resumes(data, tmp_path, at):
    out = tmp_path / "run"
    result = interrupted("train", "--data", data, *TRAIN, "--out", out, at=at)
    assert f"Continue with: malt train --resume --out {out}" in result.stdout
    assert (out / "checkpoint.safetensors").is_file() and not (out / "metrics.json").exists()
    ok("train", "--resume", "--out", out)
    assert json.loads((out / "metrics.json").read_text())["train"]["steps"] == 8


def test_train_interrupted_before_its_run_starts_leaves_nothing_to_resume(data, tmp_path):
    out = tmp_path / "run"
    result = interrupted("train", "--data", data, *TRAIN, "--out", out, at=("write", 1))
    assert result.stderr.strip().endswith("malt train: interrupted")
    assert "--resume" not in result.stdout
    assert not (out / "config.json").exists()


def test_demo_says_how_to_continue(data, tmp_path):
    out = tmp_path / "demo"
    result = interrupted("demo", "--data", data, "--out", out, at=("step", 1))
    assert "interrupted (stopped at day" in result.stdout
    assert "Run the same command again to continue" in result.stdout
    assert [p.parent.name.split("-")[0] for p in out.glob("runs/*/checkpoint.safetensors")] \
        == ["base"]


def test_a_study_and_its_workers_stop_and_say_how_to_resume(data, tmp_path):
    # Each worker sends the Ctrl-C as its run starts evaluating: outside the training steps,
    # where the trainer's handler does not see it.
    out = tmp_path / "study"
    result = interrupted("study", "main", "--preset", "smoke", "--data", data, "--out", out,
                         "--jobs", "2", "--models", "base", "--targets", "last", "--seeds", "2",
                         at=("evaluate", 1))
    assert "Run the same command again to resume" in result.stdout
    assert not list(out.glob("runs/*/metrics.json"))


def test_sigterm_stops_train_as_ctrl_c_does(data, tmp_path):
    out = tmp_path / "run"
    result = interrupted("train", "--data", data, *TRAIN, "--out", out, at=("step", 3),
                         action="terminate")
    assert f"Continue with: malt train --resume --out {out}" in result.stdout
    assert (out / "checkpoint.safetensors").is_file() and not (out / "metrics.json").exists()
    ok("train", "--resume", "--out", out)
    assert json.loads((out / "metrics.json").read_text())["train"]["steps"] == 8


STUDY = ["--preset", "smoke", "--batch-size", "64", "--jobs", "2", "--models", "base",
         "--targets", "last", "--seeds", "2"]


def session_ended(leader: int, wait_seconds: float = 120.0) -> bool:
    """Whether every process of the session `leader` started has ended (waiting a while)."""
    import time

    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(leader, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_sigterm_to_a_study_stops_its_workers_with_checkpoints(data, tmp_path):
    # One worker sends SIGTERM to the driver alone at its first step, as a job scheduler would;
    # the driver passes it on to both workers as a Ctrl-C, and each saves where it is.
    out = tmp_path / "study"
    command = ["study", "main", "--data", data, "--out", out, *STUDY]
    result = interrupted(*command, at=("step", 1), action="terminate")
    assert "Run the same command again to resume" in result.stdout
    assert not list(out.glob("runs/*/metrics.json"))
    assert list(out.glob("runs/*/checkpoint.safetensors"))
    assert "2 runs, 0 already complete" in ok(*command).stdout or \
        len(list(out.glob("runs/*/metrics.json"))) == 2


def test_ctrl_c_to_a_studys_driver_alone_stops_its_workers_with_checkpoints(data, tmp_path):
    # One worker sends SIGINT to the driver alone at its first step (`kill -INT`) and waits
    # for the stop to come back: its run, which no signal reached, stops with a checkpoint
    # instead of finishing. (The other worker's run, a few tenths of a second long here, may
    # end before the stop reaches it.)
    out = tmp_path / "study"
    result = interrupted("study", "main", "--data", data, "--out", out, *STUDY,
                         at=("step", 1), action="interrupt-leader")
    assert "Run the same command again to resume" in result.stdout
    stopped = [r for r in out.glob("runs/*") if (r / "checkpoint.safetensors").is_file()
               and not (r / "metrics.json").exists()]
    assert stopped, "every run finished: the stop did not reach the workers"


def test_workers_of_a_killed_study_stop_with_checkpoints(data, tmp_path):
    # A worker SIGKILLs the driver at its first step (no clean-up is possible there): the
    # workers notice they are orphaned, save a checkpoint and end, instead of training on.
    out = tmp_path / "study"
    command = [sys.executable, str(FAULTS), "step", "1", "kill-leader", "--", "study", "main",
               "--data", str(data), "--out", str(out), *STUDY]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    assert process.wait(timeout=300) == -signal.SIGKILL
    if not session_ended(process.pid):
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the workers of the killed driver went on")
    stopped = [r for r in out.glob("runs/*") if (r / "checkpoint.safetensors").is_file()
               and not (r / "metrics.json").exists()]
    assert stopped, "the orphaned workers finished their runs instead of stopping"


def test_predict_leaves_no_output(run, data, tmp_path):
    out = tmp_path / "scores.parquet"
    result = interrupted("predict", "--run", run, "--data", data, "--out", out,
                         at=("convert", 1))
    assert result.stderr.strip().endswith("malt predict: interrupted")
    assert list(tmp_path.iterdir()) == []


def test_export_leaves_neither_the_file_nor_its_sidecar(run, tmp_path):
    out = tmp_path / "model.pt"
    interrupted("export", "--run", run, "--format", "torchscript", "--out", out,
                at=("write", 2))  # the sidecar, written after the model file
    assert list(tmp_path.iterdir()) == []


def test_eval_on_other_data(run, tmp_path):
    other = write_random_dataset(tmp_path / "other", days=2, rows=100, seed=5)
    interrupted("eval", "--run", run, "--data", other, at=("convert", 1))


def test_prepare_leaves_only_whole_days(data, tmp_path):
    cache = tmp_path / "cache"
    interrupted("prepare", "--data", data, "--cache", cache, "--workers", "1",
                at=("convert", 1))
    days = [p for p in cache.iterdir() if p.is_dir()]
    assert all((d / "meta.json").is_file() for d in days)  # no partial or temporary day


def test_simulate_leaves_no_output(tmp_path):
    interrupted("simulate", "--size", "tiny", "--users", "300", "--days", "3", "--out",
                tmp_path / "sim", at=("parquet-write", 2))
    assert list(tmp_path.iterdir()) == []  # neither the data set nor its staging copy


def test_attribute_leaves_no_output(tmp_path):
    clicks = pd.DataFrame({"user": ["a", "a", "b"], "item": [1, 2, 1], "click_id": range(3),
                           "click_time": pd.to_datetime(["2024-05-01 08:00", "2024-05-01 09:00",
                                                         "2024-05-02 10:00"])})
    conversions = pd.DataFrame({"user": ["a", "b"], "item": [2, 1],
                                "conversion_time": pd.to_datetime(["2024-05-02 12:00",
                                                                   "2024-05-03 12:00"])})
    clicks.to_parquet(tmp_path / "clicks.parquet")
    conversions.to_parquet(tmp_path / "conversions.parquet")
    interrupted("attribute", "--clicks", tmp_path / "clicks.parquet", "--conversions",
                tmp_path / "conversions.parquet", "--out", tmp_path / "out",
                at=("parquet-write", 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clicks.parquet",
                                                          "conversions.parquet"]


def test_fetch_says_how_to_resume(monkeypatch, tmp_path, capsys):
    def download(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("malt.sources.fetch.fetch_mac", download)
    monkeypatch.setattr("malt.sources.fetch.HuggingFaceHub", lambda *args: None)
    assert main(["fetch", "mac", str(tmp_path / "mac")]) == 130
    assert "Run the same command again to resume the download" in capsys.readouterr().out


def test_a_ctrl_c_while_the_commands_load(monkeypatch, capsys):
    def load(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("malt.cli.build_parser", load)
    assert main(["models"]) == 130
    assert capsys.readouterr().err == "malt: interrupted\n"


def test_a_stop_no_command_words_is_still_an_interruption(monkeypatch, capsys):
    def run(args):
        raise Interrupted("stopped at day 1 step 2")

    monkeypatch.setattr("malt.commands.models.run", run)
    assert main(["models"]) == 130
    assert capsys.readouterr().err == "malt models: interrupted (stopped at day 1 step 2)\n"


def test_a_ctrl_c_while_a_class_is_made(monkeypatch, capsys):
    # Python 3.11 wraps it (raised in a descriptor's __set_name__) in a RuntimeError.
    def run(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise RuntimeError("Error calling __set_name__") from stop

    monkeypatch.setattr("malt.commands.models.run", run)
    assert main(["models"]) == 130
    assert capsys.readouterr().err == "malt models: interrupted\n"
    monkeypatch.setattr("malt.commands.models.run", lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # any other error stays what it is
        main(["models"])


def test_a_ctrl_c_caught_inside_exec_still_exits_130(tmp_path):
    # CPython marks a KeyboardInterrupt raised in code that exec() runs from a string (as
    # dataclasses are made, all through start-up) as unhandled even when caught: `python -m`
    # then ended by SIGINT (-2) after malt had said "interrupted".
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import sys\n"
        "import malt.commands.models as command\n"
        "from malt.cli import main\n"
        "command.run = lambda args: exec('raise KeyboardInterrupt')\n"
        "sys.exit(main(['models']))\n")
    result = subprocess.run([sys.executable, "-m", "interrupted_in_exec"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stderr.strip()) == (130, "malt models: interrupted")


def test_a_ctrl_c_after_the_command_ended_leaves_its_exit_status(tmp_path):
    # A Ctrl-C while the interpreter shuts down (here from an exit handler) ended the process by
    # SIGINT or with a traceback, though the command had finished.
    (tmp_path / "late_ctrl_c.py").write_text(
        "import atexit, os, signal\n"
        "import malt.cli\n"
        "def ctrl_c():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    for _ in range(1000):  # work on, where the signal's handler would run\n"
        "        pass\n"
        "atexit.register(ctrl_c)\n"
        "malt.cli.main = lambda argv=None: 3\n"
        "malt.cli.run()\n")
    result = subprocess.run([sys.executable, "-m", "late_ctrl_c"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stderr) == (3, "")
