"""Tables of their own widths (`embed_dims`) through training, the checkpoint, `load_run` and
an ONNX export: the loaded model has the declared table shapes and scores as the run did."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from malt.cli import main
from malt.deploy.export import export
from malt.metrics import auc
from malt.runs.load import load_run
from support.bag_data import SCHEMA, write_tagged
from support.deploy_models import converted


@pytest.mark.parametrize("encoder", ["target_attention", "din"])
def test_declared_widths_survive_the_checkpoint_and_the_export(encoder, tmp_path):
    data = write_tagged(tmp_path / "tagged", train_days=1, rows=200)
    (data / "schema.toml").write_text(SCHEMA.replace(
        'labels = ', 'embed_dims = {sku = 6, tags = 3}\nlabels = '))
    out = tmp_path / "run"
    assert main(["prepare", "--data", str(data), "--build-vocabs"]) == 0
    assert main(["train", "--data", str(data), "--model", "base", "--main", "last",
                 "--batch-size", "64", "--out", str(out), "--model-option",
                 f"encoder.name={encoder}", "--model-option", "encoder.embed_dim=4",
                 "--model-option", "tower.dims=[4]"]) == 0
    trained = load_run(out)
    tables = {name: tuple(p.shape) for name, p in trained.model.named_parameters()
              if "embeddings" in name}
    assert sorted(shape[1] for shape in tables.values()) == [3, 4, 6]  # tags, city, sku
    day = data / "test" / "day9.parquet"
    arrays = converted(trained.schema, trained, day)
    feeds = {k: arrays[k].astype(np.int64) for k in trained.model.serving_inputs}
    with torch.no_grad():
        probs = trained.model.probabilities({k: torch.from_numpy(a) for k, a in feeds.items()})
    eager = probs["last"].numpy()
    recorded = json.loads((out / "metrics.json").read_text())["views"]["last"]["auc"]
    assert abs(auc(eager, pq.read_table(day)["last"].to_numpy() > 0) - recorded) < 1e-6
    onnxruntime = pytest.importorskip("onnxruntime")
    export(trained, tmp_path / "model.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, feeds)[0] - eager).max() <= 1e-5
