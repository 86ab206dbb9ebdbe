"""`load_run`: every reader of a finished run's model (`malt eval --data`, `malt predict`,
`malt export`, the API's `Run`) loads it one way, with the schema the run was trained on."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

import malt
from malt.cli import main
from malt.data.schema import MAC, Schema
from malt.deploy.export import sidecar_path
from malt.errors import ConfigError
from malt.eval.predictions import Predictions
from malt.eval.rescore import rescore
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.load import load_run
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS

DROPPED = "context_feat3"


def _toml(values: dict) -> str:
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def schema_toml_without(field: str) -> str:
    """The MAC schema as a data set's `schema.toml`, with `field` ignored instead of read."""
    groups = {g: [f.name for f in MAC.fields if f.group == g and f.name != field]
              for g in ("user", "ad", "context")}
    return (_toml({"name": "mac", "user_column": MAC.user_column, "labels": list(MAC.labels),
                   "sequence_pad": MAC.sequence_pad, "sequence_length": MAC.sequence_length,
                   "float_sequences": [s.name for s in MAC.float_sequences],
                   "ignore_columns": [field]})
            + "[fields]\n" + _toml(groups)
            + "[id_sequences]\n" + _toml({s.name: s.shares for s in MAC.id_sequences}))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    data = write_random_dataset(root / "data", days=3, rows=301)
    train_run(RunConfig.from_dict({
        "seed": 3, "data": {"path": str(data)}, "task": {"main": "last", "aux": ["first"]},
        "train": {"batch_size": 64}, "model": {"name": "mmoe", **SMALL_BLOCKS}}), root / "run")
    return root / "run"


@pytest.fixture(scope="module")
def relabelled(run, tmp_path_factory):
    """The run's training data again, now declaring a schema of its own that reads one field
    less than the run's model was trained on."""
    copy = tmp_path_factory.mktemp("relabelled") / "data"
    shutil.copytree(RunDir(run).load_config().data.path, copy)
    (copy / "schema.toml").write_text(schema_toml_without(DROPPED))
    assert DROPPED not in Schema.load(copy / "schema.toml").field_names
    assert DROPPED in RunDir(run).load_schema().field_names
    return copy


def saved(run) -> Predictions:
    return Predictions.load(RunDir(run).predictions_file)


def test_the_loaded_schema_is_the_runs_own_whatever_the_data_declares(run, relabelled):
    trained = load_run(run, vocabs=relabelled)
    assert trained.schema == RunDir(run).load_schema()
    assert DROPPED in trained.schema.field_names


def test_eval_on_other_data_reads_it_with_the_runs_schema(run, relabelled, capsys):
    # Re-scoring once built the model from the scored data's schema, which here lacks a field
    # the trained model has: its checkpoint did not fit and `malt eval --data` exited 3.
    np.testing.assert_array_equal(rescore(RunDir(run), relabelled).probs, saved(run).probs)
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--data", str(relabelled)]) == 0
    gauc = RunDir(run).load_metrics().views["last"].gauc
    assert f"{gauc:.4f}" in capsys.readouterr().out


def test_predict_and_the_api_score_other_data_with_the_runs_model(run, relabelled, tmp_path):
    out = tmp_path / "p.parquet"
    assert main(["predict", "--run", str(run), "--data", str(relabelled), "--out",
                 str(out)]) == 0
    scored = pq.read_table(out)
    np.testing.assert_allclose(scored["p_last"].to_numpy(), saved(run).probs[:, 0], atol=1e-6)
    frame = malt.load_run(run, vocabs=relabelled).predict(relabelled / "test" / "test.parquet")
    np.testing.assert_array_equal(frame["p_last"].to_numpy(), scored["p_last"].to_numpy())


def test_export_describes_the_runs_schema(run, relabelled, tmp_path):
    out = tmp_path / "model.pt"
    assert main(["export", "--run", str(run), "--vocabs", str(relabelled), "--format",
                 "torchscript", "--out", str(out)]) == 0
    sidecar = json.loads(sidecar_path(out).read_text())
    assert Schema.from_dict(sidecar["schema"]) == RunDir(run).load_schema()


def test_a_run_without_its_schema_file_takes_its_training_datas(run, tmp_path):
    # Runs of malt before schema.json: the schema of the data set they name.
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "schema.json").unlink()
    assert load_run(old).schema == MAC
    data = tmp_path / "data"
    shutil.copytree(RunDir(run).load_config().data.path, data)
    (data / "schema.toml").write_text(schema_toml_without(DROPPED))
    config = json.loads((old / "config.json").read_text())
    config["data"]["path"] = str(data)
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="does not fit these vocabs"):
        load_run(old)
