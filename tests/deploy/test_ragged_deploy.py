"""Ragged id sequences (`ragged_sequences = true`: list columns holding any number of items per
row) from files to a trained model, its checkpoint, `malt predict`, ONNX and TorchScript
exports and the service: each scores the rows as the eager model scores them cut and padded by
hand, an empty history and one longer than the kept length included; and every encoder
exports its sequences as the eager model scores them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from malt.cli import main
from malt.data.layout import write_day
from malt.data.schema import schema_for
from malt.deploy.export import export
from malt.runs.load import TrainedModel, load_run
from support.bag_data import history_schema, ragged_ids
from support.deploy_models import (
    assert_predict_and_exports_score_as,
    converted,
    eager_scores,
    exported_scores,
    service_client,
    untrained,
)

PARITY = 1e-5
KEPT = 4
SCHEMA = history_schema(KEPT, '"sku"')
SKUS = 20
"""Skus of the ad field; a history also holds skus 20 to 24, which its vocab may not hold."""


def write_histories(root: Path, rows: int = 200) -> Path:
    """Two training days and one test day of histories of 0 to 8 skus (with a similarity per
    item); a row converts more often when its ad's sku is among its history's kept items."""
    rng = np.random.default_rng(0)
    for name in ("train/day0.parquet", "train/day1.parquet", "test/day9.parquet"):
        history = ragged_ids(rng, rows, 8, SKUS + 5)
        sim = pa.ListArray.from_arrays(history.offsets, pa.array(
            rng.uniform(-1, 1, len(history.values)).astype(np.float32)))
        sku = rng.integers(0, SKUS, rows)
        seen = np.array([s in h[:KEPT] for s, h in zip(sku, history.to_pylist())])
        converts = rng.random(rows) < np.where(seen, 0.7, 0.1)
        write_day(root / name, pa.table({
            "buyer": pa.array(rng.integers(0, 30, rows)),
            "city": pa.array(rng.integers(0, 4, rows)), "sku": pa.array(sku),
            "history": history, "sim": sim,
            "last": pa.array(converts.astype(np.float32)),
            "first": pa.array((converts & (rng.random(rows) < 0.6)).astype(np.float32))}))
    (root / "schema.toml").write_text(SCHEMA)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = write_histories(tmp_path_factory.mktemp("ragged") / "histories")
    assert main(["prepare", "--data", str(root), "--build-vocabs"]) == 0
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ragged") / "run"
    assert main(["train", "--data", str(data), "--model", "moae", "--main", "last",
                 "--aux", "first", "--batch-size", "32", "--lr", "0.01",
                 "--model-option", "encoder.embed_dim=4", "--model-option", "tower.dims=[8]",
                 "--out", str(out)]) == 0
    return out


def by_hand(trained: TrainedModel, day: Path) -> dict[str, np.ndarray]:
    """The day's arrays with `seq` and `dense_seq` cut and padded row by row here, not by the
    reader: each history's first items through the vocab, then the table's padding row (the
    row after its OOV row); each similarity list's first items, then 0."""
    arrays = converted(trained.schema, trained, day)
    table = pq.read_table(day)
    lookup = trained.lookups["sku"]
    seq, dense = np.full_like(arrays["seq"], lookup.size), np.zeros_like(arrays["dense_seq"])
    for row, (items, sims) in enumerate(zip(table["history"].to_pylist(),
                                            table["sim"].to_pylist())):
        kept = len(items[:KEPT])
        seq[row, 0, :kept] = [lookup.index_of(str(item)) for item in items[:KEPT]]
        dense[row, 0, :kept] = sims[:KEPT]
    return {**arrays, "seq": seq, "dense_seq": dense}


def test_predict_exports_and_the_service_score_ragged_rows_as_the_eager_model(data, run,
                                                                              tmp_path):
    day = data / "test" / "day9.parquet"
    lengths = np.array([len(h) for h in pq.read_table(day)["history"].to_pylist()])
    assert (lengths == 0).any() and (lengths > KEPT).any()
    trained = load_run(run)  # the checkpoint, saved and loaded back
    assert trained.model.serving_inputs == ("sparse", "seq", "dense_seq")
    arrays = by_hand(trained, day)
    reference = eager_scores(trained, arrays)
    assert_predict_and_exports_score_as(reference, run, trained, day, arrays, tmp_path, PARITY)

    rows = pq.read_table(day).drop_columns(["last", "first"]).to_pylist()
    with service_client(trained) as client:
        answer = client.post("/predict", json={"rows": rows})
        described = client.get("/metadata").json()["schema"]
    assert answer.status_code == 200, answer.text
    assert described["ragged_sequences"] is True
    assert described["id_sequences"] == {"history": KEPT}
    served = np.array(answer.json()["predictions"]["p_last"])
    assert np.abs(served - reference[:, 0]).max() <= PARITY


@pytest.mark.parametrize("encoder", ["target_attention", "dnn", "dcnv2", "din"])
def test_every_encoder_exports_its_ragged_sequences(encoder, data, tmp_path):
    trained = untrained("base", data, schema_for(data), "last", (), encoder=encoder)
    arrays = by_hand(trained, data / "test" / "day9.parquet")
    reference = eager_scores(trained, arrays)
    for fmt in ("onnx", "torchscript"):
        out = tmp_path / f"model.{fmt}"
        export(trained, out, fmt)
        assert np.abs(exported_scores(out, fmt, trained, arrays) - reference).max() <= PARITY
