"""Id sequences of their own lengths (a click history of 5 beside a search history of 2, the
similarities aligned with the clicks), ragged and fixed-length rows, from files to a model of
every encoder trained by `malt train`: `malt predict`, the ONNX and TorchScript exports and
the service score the rows as the eager model scores them padded by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from malt.cli import main
from malt.data.layout import write_day
from malt.runs.load import TrainedModel, load_run
from support.bag_data import ragged_ids
from support.deploy_models import (
    assert_predict_and_exports_score_as,
    converted,
    eager_scores,
    service_client,
)

PARITY = 1e-5
LENGTHS = {"clicks": 5, "searches": 2}
PAD = -1
"""The raw id that pads fixed-length rows."""
SCHEMA = """
name = "histories"
user_column = "buyer"
labels = ["last", "first"]
{rows}
float_sequences = {{sim = 5}}

[fields]
user = ["city"]
ad = ["sku", "shop"]

[id_sequences]
clicks = {{ shares = "sku", length = 5 }}
searches = {{ shares = "shop", length = 2 }}
"""
ROWS = {"ragged": "ragged_sequences = true", "fixed": f'sequence_pad = "{PAD}"'}
SKUS, SHOPS = 20, 6


def fixed(lists: pa.ListArray, length: int) -> pa.ListArray:
    """Each row's first `length` items, then PAD up to `length`."""
    rows = [(items[:length] + [PAD] * length)[:length] for items in lists.to_pylist()]
    return pa.array(rows, type=pa.list_(pa.int64()))


def write_histories(root: Path, case: str, rows: int = 200) -> Path:
    """Two training days and one test day; a row converts more often when its ad's sku is
    among its kept clicks or its shop among its kept searches."""
    rng = np.random.default_rng(0)
    for name in ("train/day0.parquet", "train/day1.parquet", "test/day9.parquet"):
        clicks = ragged_ids(rng, rows, 8, SKUS + 5)
        searches = ragged_ids(rng, rows, 4, SHOPS + 2)
        sims = rng.uniform(-1, 1, len(clicks.values)).astype(np.float32)
        sim = pa.ListArray.from_arrays(clicks.offsets, pa.array(sims))
        sku, shop = rng.integers(0, SKUS, rows), rng.integers(0, SHOPS, rows)
        seen = np.array([s in c[:LENGTHS["clicks"]] or h in q[:LENGTHS["searches"]]
                         for s, c, h, q in zip(sku, clicks.to_pylist(), shop,
                                               searches.to_pylist())])
        if case == "fixed":
            clicks, searches = fixed(clicks, LENGTHS["clicks"]), fixed(searches,
                                                                       LENGTHS["searches"])
            sim = pa.array([(s[:5] + [0.0] * 5)[:5] for s in sim.to_pylist()])
        converts = rng.random(rows) < np.where(seen, 0.7, 0.1)
        write_day(root / name, pa.table({
            "buyer": pa.array(rng.integers(0, 30, rows)),
            "city": pa.array(rng.integers(0, 4, rows)), "sku": pa.array(sku),
            "shop": pa.array(shop), "clicks": clicks, "searches": searches, "sim": sim,
            "last": pa.array(converts.astype(np.float32)),
            "first": pa.array((converts & (rng.random(rows) < 0.6)).astype(np.float32))}))
    (root / "schema.toml").write_text(SCHEMA.format(rows=ROWS[case]))
    return root


@pytest.fixture(scope="module", params=list(ROWS))
def data(request, tmp_path_factory) -> Path:
    root = write_histories(tmp_path_factory.mktemp(request.param) / "histories", request.param)
    assert main(["prepare", "--data", str(root), "--build-vocabs"]) == 0
    return root


def by_hand(trained: TrainedModel, day: Path) -> dict[str, np.ndarray]:
    """The day's arrays with `seq` and `dense_seq` padded row by row here, not by the reader:
    each sequence's first items through its vocab, then its table's padding row up to the
    longest sequence's length (5); each similarity list's first 5 values, then 0."""
    arrays = converted(trained.schema, trained, day)
    table = pq.read_table(day)
    seq, dense = np.empty_like(arrays["seq"]), np.zeros_like(arrays["dense_seq"])
    for s, (name, length) in enumerate(LENGTHS.items()):
        lookup = trained.lookups[trained.schema.id_sequences[s].shares]
        seq[:, s] = trained.vocab.sequence_pad[name]
        for row, items in enumerate(table[name].to_pylist()):
            kept = items[:length]
            seq[row, s, :len(kept)] = [lookup.index_of(str(item)) for item in kept]
    for row, sims in enumerate(table["sim"].to_pylist()):
        dense[row, 0, :len(sims[:5])] = sims[:5]
    return {**arrays, "seq": seq, "dense_seq": dense}


@pytest.mark.parametrize("encoder", ["target_attention", "dnn", "dcnv2", "din"])
def test_every_encoder_trains_and_scores_as_the_eager_model_everywhere(encoder, data,
                                                                      tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "moae", "--main", "last",
                 "--aux", "first", "--batch-size", "32", "--lr", "0.01",
                 "--model-option", f"encoder.name={encoder}",
                 "--model-option", "encoder.embed_dim=4", "--model-option", "tower.dims=[8]",
                 "--out", str(run)]) == 0
    trained = load_run(run)
    assert trained.schema.sequence_length == 5
    day = data / "test" / "day9.parquet"
    arrays = by_hand(trained, day)
    # searches is padded past its 2 items, with its own table's padding row
    assert (arrays["seq"][:, 1, 2:] == trained.vocab.sequence_pad["searches"]).all()
    reference = eager_scores(trained, arrays)
    assert_predict_and_exports_score_as(reference, run, trained, day, arrays, tmp_path, PARITY)
    if encoder != "target_attention":
        return
    rows = pq.read_table(day).drop_columns(["last", "first"]).to_pylist()
    with service_client(trained) as client:
        answer = client.post("/predict", json={"rows": rows})
        described = client.get("/metadata").json()["schema"]
    assert answer.status_code == 200, answer.text
    assert described["id_sequences"] == LENGTHS
    served = np.array(answer.json()["predictions"]["p_last"])
    assert np.abs(served - reference[:, 0]).max() <= PARITY
