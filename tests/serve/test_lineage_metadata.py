"""`/metadata` names the run a warm-started model started from, served as a run or as its
export."""

from __future__ import annotations

from malt.deploy.export import export
from malt.deploy.exported import load_export
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from malt.runs.load import load_run
from malt.serve.model import ServedModel
from support.mac_data import write_random_dataset


def _config(data, init: dict | None = None, **data_options) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 3, "data": {"path": str(data), **data_options}, "init": init or {},
        "train": {"batch_size": 64},
        "model": {"name": "base", "encoder": {"embed_dim": 4, "attention_heads": 2},
                  "expert": {"dim": 8}, "tower": {"dims": [4]}}})


def test_the_parent_of_a_warm_started_run_and_of_its_export_is_named(tmp_path):
    data = write_random_dataset(tmp_path / "data", days=3, rows=120)
    parent, child = tmp_path / "parent", tmp_path / "child"
    train_run(_config(data, train_days=1), parent)
    train_run(_config(data, {"from_run": str(parent)}, train_from="1", train_days=1), child)
    trained = load_run(child)
    assert ServedModel.of_run(trained).metadata()["parent"] == str(parent.resolve())
    export(trained, tmp_path / "child.onnx")
    served = ServedModel.of_export(load_export(tmp_path / "child.onnx"))
    assert served.metadata()["parent"] == str(parent.resolve())
    export(load_run(parent), tmp_path / "parent.onnx")
    assert ServedModel.of_export(load_export(tmp_path / "parent.onnx")).metadata()["parent"] \
        is None
