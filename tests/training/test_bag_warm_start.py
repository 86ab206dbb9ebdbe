"""A warm start grows a bag's table by the ids of the new days, as it grows a field's."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from malt.cli import main
from malt.data.layout import write_day
from malt.runs.load import load_run
from support.bag_data import TAGS, write_tagged

TRAIN = ["--model", "base", "--main", "last", "--batch-size", "64", "--model-option",
         "encoder.embed_dim=4", "--model-option", "tower.dims=[4]"]


def test_a_warm_start_grows_the_bag_table_by_the_new_ids(tmp_path):
    data = write_tagged(tmp_path / "tagged", train_days=1, rows=150)
    assert main(["prepare", "--data", str(data), "--build-vocabs"]) == 0
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "parent"), *TRAIN]) == 0
    n = 50
    write_day(data / "train" / "day5.parquet", pa.table({
        "buyer": np.zeros(n, dtype=np.int64), "city": np.zeros(n, dtype=np.int64),
        "sku": pa.array(["s1"] * n), "tags": pa.array([[TAGS + 8, TAGS + 9, 3]] * n),
        "last": np.ones(n, dtype=np.float32), "first": np.zeros(n, dtype=np.float32)}))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "child"),
                 "--init-from", str(tmp_path / "parent"), *TRAIN]) == 0
    parent, child = load_run(tmp_path / "parent"), load_run(tmp_path / "child")
    assert child.vocab.sizes["tags"] == parent.vocab.sizes["tags"] + 2 == TAGS + 3
    grown = json.loads((tmp_path / "child" / "vocabs" / "tags.json").read_text())
    known = json.loads((data / "vocabs" / "tags.json").read_text())
    assert {k: grown[k] for k in known} == known  # the parent's ids keep their rows
    assert grown[str(TAGS + 8)] == TAGS and grown[str(TAGS + 9)] == TAGS + 1
    table = child.model.encoder.embeddings.bag_tables[0].weight
    assert table.shape == (TAGS + 3, 4)
