"""`dfm` through `malt train`: it trains as of T on data with click times, keeps its delay
rates in the run (warm start included), and is refused up front where it cannot apply."""

from __future__ import annotations

import pytest
import torch

from malt.cli import main
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from malt.runs.load import load_run
from support.mac_data import T0, add_click_time, add_known_at, write_random_dataset

AS_OF = T0 + 2 * 86400.0


@pytest.fixture(scope="module")
def clicked(tmp_path_factory):
    root = write_random_dataset(tmp_path_factory.mktemp("dfm") / "data", days=3, rows=256)
    add_known_at(root)
    add_click_time(root)
    return root


def config(data, *, lr: float, init: dict | None = None, **data_options) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 3, "data": {"path": str(data), "as_of": str(AS_OF), **data_options},
        "task": {"main": "last", "aux": ["first"], "delay_correction": "dfm"},
        "train": {"batch_size": 64, "lr": lr}, "init": init or {},
        "model": {"name": "shared_bottom", "encoder": {"embed_dim": 4},
                  "tower": {"dims": [4]}}})


def log_rates(run) -> dict[str, float]:
    rates = load_run(run).model.delay_rates
    return {view: float(rates[view].detach()) for view in ("last", "first")}


def test_delay_rates_are_trained_saved_and_warm_started(clicked, tmp_path):
    parent, child = tmp_path / "parent", tmp_path / "child"
    result = train_run(config(clicked, lr=0.05, train_days=1), parent)
    assert torch.isfinite(torch.tensor(result.views["last"].auc))
    trained = log_rates(parent)
    assert all(abs(theta) > 0.05 for theta in trained.values())   # moved from log λ = 0
    train_run(config(clicked, lr=1e-5, train_from="train-01", init={"from_run": str(parent)}),
              child)
    for view, theta in log_rates(child).items():   # 4 steps of 1e-5 from the parent's
        assert theta == pytest.approx(trained[view], abs=1e-3)


def test_dfm_without_click_times_exits_3(tmp_path, capsys):
    data = write_random_dataset(tmp_path / "plain", days=3, rows=64)
    add_known_at(data)
    code = main(["train", "--data", str(data), "--model", "shared_bottom", "--as-of",
                 str(AS_OF), "--delay-correction", "dfm", "--out", str(tmp_path / "run")])
    assert code == 3
    assert "'dfm' needs the click times" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_dfm_without_an_as_of_time_exits_3(clicked, tmp_path, capsys):
    code = main(["train", "--data", str(clicked), "--model", "shared_bottom",
                 "--delay-correction", "dfm", "--out", str(tmp_path / "run")])
    assert code == 3
    assert "give data.as_of" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
