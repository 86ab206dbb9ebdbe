"""A history given as fixed-width lists and a length column, from files to a trained model:
`malt predict` and the service score its rows as the eager model scores the same rows given
as ragged lists of their counted items."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from malt.cli import main
from malt.data.layout import write_day
from malt.runs.load import load_run
from support.bag_data import history_schema, ragged_ids
from support.deploy_models import converted, eager_scores, service_client

PARITY = 1e-6
KEPT, WIDTH = 4, 8
SCHEMA = history_schema(KEPT, '{ shares = "sku", length_column = "history_len" }')
SKUS = 20


def filled(lists: pa.ListArray, filler: pa.Array) -> pa.Array:
    """Each row of `lists` followed by `filler`'s values up to `WIDTH` items, as a fixed-size
    list column."""
    rows = lists.to_pylist()
    spare = iter(filler.to_pylist())
    return pa.array([row + [next(spare) for _ in range(WIDTH - len(row))] for row in rows],
                    type=pa.list_(filler.type, WIDTH))


def write_histories(root: Path, rows: int = 200) -> dict[str, pa.Table]:
    """Two training days and one test day of histories of 0 to 8 skus (a similarity per
    item) padded to 8 with ids out of any vocab and nulls, and their ragged form by day."""
    rng = np.random.default_rng(0)
    ragged = {}
    for name in ("train/day0.parquet", "train/day1.parquet", "test/day9.parquet"):
        history = ragged_ids(rng, rows, WIDTH, SKUS + 5)
        sim = pa.ListArray.from_arrays(history.offsets, pa.array(
            rng.uniform(-1, 1, len(history.values))))
        sku = rng.integers(0, SKUS, rows)
        seen = np.array([s in h[:KEPT] for s, h in zip(sku, history.to_pylist())])
        converts = rng.random(rows) < np.where(seen, 0.7, 0.1)
        features = {"buyer": pa.array(rng.integers(0, 30, rows)),
                    "city": pa.array(rng.integers(0, 4, rows)), "sku": pa.array(sku)}
        labels = {"last": pa.array(converts.astype(np.float32)),
                  "first": pa.array((converts & (rng.random(rows) < 0.6)).astype(np.float32))}
        junk = rng.integers(1000, 2000, rows * WIDTH)
        filler_ids = pa.array(junk, mask=junk % 3 == 0)
        filler_sims = pa.array(rng.uniform(1e6, 1e7, rows * WIDTH), mask=junk % 2 == 0)
        write_day(root / name, pa.table({
            **features, "history": filled(history, filler_ids),
            "sim": filled(sim, filler_sims),
            "history_len": pa.array(np.diff(history.offsets.to_numpy()), type=pa.int32()),
            **labels}))
        ragged[name] = pa.table({**features, "history": history, "sim": sim, **labels})
    (root / "schema.toml").write_text(SCHEMA)
    return ragged


def test_predict_and_the_service_score_counted_rows_as_ragged_rows(tmp_path):
    data = tmp_path / "histories"
    ragged = write_histories(data)
    assert main(["prepare", "--data", str(data), "--build-vocabs"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "moae", "--main", "last",
                 "--aux", "first", "--batch-size", "32", "--model-option",
                 "encoder.embed_dim=4", "--model-option", "tower.dims=[8]",
                 "--out", str(run)]) == 0
    trained = load_run(run)
    # No id past a row's count entered the vocab (they are 1000 and above).
    assert max(int(k) for k in trained.lookups["sku"].mapping()) < SKUS + 5
    plain = dataclasses.replace(trained.schema, id_sequences=tuple(
        dataclasses.replace(s, length_column=None) for s in trained.schema.id_sequences))
    ragged_day = tmp_path / "ragged.parquet"
    write_day(ragged_day, ragged["test/day9.parquet"])
    reference = eager_scores(trained, converted(plain, trained, ragged_day))[:, 0]

    day = data / "test" / "day9.parquet"
    assert main(["predict", "--run", str(run), "--data", str(day), "--out",
                 str(tmp_path / "p.parquet")]) == 0
    predicted = pq.read_table(tmp_path / "p.parquet")["p_last"].to_numpy()
    assert np.abs(predicted - reference).max() <= PARITY

    rows = pq.read_table(day).drop_columns(["last", "first"]).to_pylist()
    with service_client(trained) as client:
        answer = client.post("/predict", json={"rows": rows})
        described = client.get("/metadata").json()["schema"]
    assert answer.status_code == 200, answer.text
    assert "history_len" in described["columns"]
    assert described["length_columns"] == {"history": "history_len"}
    served = np.array(answer.json()["predictions"]["p_last"])
    assert np.abs(served - reference).max() <= PARITY
