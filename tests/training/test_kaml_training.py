"""Training on incomplete multi-label data end to end: masks through the trainer, the
target-action report, true labels kept out of the loss, gradient methods under a mask."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from malt.data.layout import write_day
from malt.errors import ConfigError
from malt.eval.predictions import Predictions
from malt.eval.target import target_metrics
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from support.kaml_data import kaml_schema, write_kaml_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kaml") / "data"
    write_kaml_dataset(root, days=4, rows=160)
    (root / "schema.json").write_text(json.dumps(kaml_schema().to_dict()))
    return root


def _config(data: Path, model="kaml", mask="adm", **train) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 3, "data": {"path": str(data), "schema": str(data / "schema.json")},
        "task": {"main": "act", "aux": ["reg", "pay"], "aux_weight": 1.0, "mask": mask,
                 "adm_alpha": 2.0},
        "train": {"batch_size": 48, "log_every": 1000, "lr": 3e-3, **train},
        "model": {"name": model, "encoder": {"embed_dim": 8, "attention_heads": 2},
                  "expert": {"dim": 16}, "tower": {"dims": [8, 4]}},
    })


def _with_other_truth(data: Path, out: Path) -> Path:
    """A copy of `data` whose true labels differ wherever they are not observed."""
    shutil.copytree(data, out, ignore=shutil.ignore_patterns(".malt_cache"))
    schema = kaml_schema()
    for path in [*out.glob("train/*.parquet"), *out.glob("test/*.parquet")]:
        table = pq.read_table(path)
        for label, true in zip(schema.labels, schema.true_labels):
            observed = table[label].to_numpy()
            flipped = np.where(observed > 0, 1.0, 1.0 - table[true].to_numpy())
            table = table.set_column(table.schema.get_field_index(true), true,
                                     pa.array(flipped.astype(np.float32)))
        write_day(path, table)
    return out


def test_run_reports_target_metrics_and_coverage(data, tmp_path):
    metrics = train_run(_config(data), tmp_path / "run")
    assert set(metrics.target) == {"act", "reg", "pay", "all"}
    predictions = Predictions.load(tmp_path / "run" / "predictions.npz")
    assert predictions.target_action is not None
    assert target_metrics(predictions) == metrics.target
    coverage = metrics.coverage
    assert set(coverage) == {"base", "adm"}
    assert all(coverage["adm"][v] >= coverage["base"][v] for v in ("act", "reg", "pay"))
    assert "mask 1 per action" in (tmp_path / "run" / "log.txt").read_text()
    assert set(metrics.views) == {"act", "reg", "pay"}


@pytest.mark.parametrize("model, mask", [("kaml", "adm"), ("mmoe", "base"),
                                         ("star", "reported")])
def test_unreported_true_labels_never_reach_the_loss(data, tmp_path, model, mask):
    other = _with_other_truth(data, tmp_path / "other")
    a = train_run(_config(data, model, mask), tmp_path / "a")
    b = train_run(_config(other, model, mask), tmp_path / "b")
    pa_ = Predictions.load(tmp_path / "a" / "predictions.npz")
    pb = Predictions.load(tmp_path / "b" / "predictions.npz")
    np.testing.assert_array_equal(pa_.probs, pb.probs)
    assert a.target == b.target


def test_the_oracle_trains_on_the_true_labels(data, tmp_path):
    other = _with_other_truth(data, tmp_path / "other")
    train_run(_config(data, "mmoe", "oracle"), tmp_path / "a")
    train_run(_config(other, "mmoe", "oracle"), tmp_path / "b")
    pa_ = Predictions.load(tmp_path / "a" / "predictions.npz")
    pb = Predictions.load(tmp_path / "b" / "predictions.npz")
    assert not np.array_equal(pa_.probs, pb.probs)


@pytest.mark.parametrize("method", ["gcs", "pcgrad"])
def test_gradient_methods_train_under_a_mask(data, tmp_path, method):
    metrics = train_run(_config(data, "kaml", "adm", grad_method=method), tmp_path / method)
    assert np.isfinite(metrics.target["all"].logloss)


def test_a_mask_the_data_cannot_support_is_refused(tmp_path):
    from support.mac_data import write_random_dataset

    root = write_random_dataset(tmp_path / "mac", days=2, rows=20)
    config = RunConfig.from_dict({"data": {"path": str(root)}, "task": {"main": "last",
                                                                        "mask": "base"}})
    with pytest.raises(ConfigError, match="target_action_column"):
        train_run(config, tmp_path / "run")
