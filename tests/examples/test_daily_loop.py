"""examples/daily_loop.sh through three days on tiny random data: each day warm-starts from the
served run, the link moves only once a day has finished, and a day run again changes nothing."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from malt.cli import main
from malt.runs.directory import RunDir
from support.mac_data import write_random_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "daily_loop.sh"
RUN_FLAGS = ["--seed", "5", "--batch-size", "64", "--model", "base",
             "--model-option", "encoder.embed_dim=4"]


def _day(data: Path, runs: Path, day: str, **env: str) -> subprocess.CompletedProcess:
    malt = f"{shlex.quote(sys.executable)} -m malt"
    return subprocess.run(["bash", str(SCRIPT), str(data), str(runs), day], text=True,
                          capture_output=True, env={**os.environ, "MALT": malt,
                                                    "EXPORT_FORMAT": "torchscript", **env})


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> tuple[Path, Path]:
    """The first model on train-00, then the script on train-01 and train-02."""
    root = tmp_path_factory.mktemp("daily")
    data = write_random_dataset(root / "data", days=5, rows=128)
    runs = root / "runs"
    assert main(["train", "--data", str(data), "--train-days", "1",
                 "--out", str(runs / "train-00"), *RUN_FLAGS]) == 0
    (runs / "current").symlink_to("train-00")
    for day in ("train-01", "train-02"):
        done = _day(data, runs, day)
        assert done.returncode == 0, done.stderr
    return data, runs


def test_each_day_warm_starts_from_the_run_served_the_day_before(chain):
    _, runs = chain
    newest = RunDir(runs / "train-02")
    assert newest.lineage() == [(runs / "train-01").resolve(), (runs / "train-00").resolve()]
    assert newest.load_metrics().train.days == 1
    assert newest.load_config().data.train_from == "train-02"
    assert os.readlink(runs / "current") == "train-02"
    assert (runs / "train-02.pt").stat().st_size > 0


def test_the_served_model_is_scored_on_each_new_day(chain):
    _, runs = chain
    for day in ("train-01", "train-02"):
        report = (runs / f"{day}.served-score.txt").read_text()
        assert f"scored on {day} of " in report and "last*" in report


def test_a_day_run_again_trains_nothing_and_keeps_the_link(chain):
    data, runs = chain
    checkpoint = runs / "train-02" / "checkpoint.safetensors"
    before = checkpoint.stat().st_mtime_ns
    done = _day(data, runs, "train-02")
    assert done.returncode == 0, done.stderr
    assert "is finished: not trained again" in done.stdout
    assert checkpoint.stat().st_mtime_ns == before
    assert os.readlink(runs / "current") == "train-02"


def test_a_failed_day_leaves_the_served_run_in_place(chain, tmp_path):
    data, runs = chain
    done = _day(data, runs, "train-03", AS_OF="not a time")
    assert done.returncode == 3 and "as_of" in done.stderr
    assert os.readlink(runs / "current") == "train-02"
    assert not (runs / "train-03.pt").exists()


def test_without_a_served_run_the_script_says_how_to_start(tmp_path):
    data = write_random_dataset(tmp_path / "data", days=3, rows=64)
    done = _day(data, tmp_path / "runs", "train-01")
    assert done.returncode == 3 and "train the first model" in done.stderr
