"""A small data set whose conversions depend only on a bag (a multi-hot list column)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from malt.data.layout import write_day

SCHEMA = """
name = "tagged"
user_column = "buyer"
labels = ["last", "first"]

[fields]
user = ["city"]
ad = ["sku"]

[bags]
tags = { group = "ad", pooling = "sum", max_length = 4 }
"""


def history_schema(kept: int, history: str) -> str:
    """A schema of ragged histories of skus (`kept` items kept, a similarity each) whose id
    sequence is declared as `history = <history>`."""
    return f"""
name = "histories"
user_column = "buyer"
labels = ["last", "first"]
ragged_sequences = true
sequence_length = {kept}
float_sequences = ["sim"]

[fields]
user = ["city"]
ad = ["sku"]

[id_sequences]
history = {history}
"""


TAGS = 12
SIGNAL_TAG = 3
"""Rows whose bag holds this tag convert (most of them); the others rarely do."""


def ragged_ids(rng: np.random.Generator, rows: int, longest: int, ids: int) -> pa.ListArray:
    """A list column of `rows` rows, each of 0 to `longest` ids drawn from 0 to `ids` - 1."""
    lengths = rng.integers(0, longest + 1, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = rng.integers(0, ids, int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def ragged_tags(rng: np.random.Generator, rows: int) -> pa.ListArray:
    """Bags of 0 to 6 tags per row (some longer than the schema's max_length of 4)."""
    return ragged_ids(rng, rows, 6, TAGS)


def signal(tags: pa.ListArray, max_length: int = 4) -> np.ndarray:
    """Whether each row's first `max_length` tags hold `SIGNAL_TAG` (bool [N])."""
    return np.array([SIGNAL_TAG in row[:max_length] for row in tags.to_pylist()])


def write_tagged(root: Path, *, rows: int = 400, seed: int = 0, train_days: int = 3) -> Path:
    """`train_days` training days and one test day; the labels follow the bag only."""
    rng = np.random.default_rng(seed)
    names = [f"train/day{d}.parquet" for d in range(train_days)] + ["test/day9.parquet"]
    for name in names:
        tags = ragged_tags(rng, rows)
        converts = rng.random(rows) < np.where(signal(tags), 0.8, 0.1)
        table = {"buyer": pa.array(rng.integers(0, 40, rows)),
                 "city": pa.array(rng.integers(0, 5, rows)),
                 "sku": pa.array([f"s{i}" for i in rng.integers(0, 20, rows)]),
                 "tags": tags,
                 "last": pa.array(converts.astype(np.float32)),
                 "first": pa.array((converts & (rng.random(rows) < 0.7)).astype(np.float32))}
        write_day(root / name, pa.table(table))
    (root / "schema.toml").write_text(SCHEMA)
    return root
