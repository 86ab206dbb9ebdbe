"""Small data sets in the MAC layout, built by hand (`support.mac_data`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from malt.data.layout import day_path, write_day, write_vocab
from malt.data.schema import MAC, Schema


def fixed_lists(values: np.ndarray) -> pa.ListArray:
    """A list column from a [rows, length] array (every row holds `length` items)."""
    rows, length = values.shape
    offsets = np.arange(0, rows * length + 1, length, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.reshape(-1)))


def random_day_table(schema: Schema, rows: int, rng: np.random.Generator, vocab_size: int = 50,
                     ) -> pa.Table:
    """A day of `rows` random rows for `schema`: ids are integers in [1, vocab_size), sequence
    ids in [0, vocab_size) (0 pads), about 20% positives per label; impression logs
    (`click_column`) click every credited row and about 30% of the others."""
    columns: dict[str, pa.Array] = {
        schema.user_column: pa.array(rng.integers(1, vocab_size, rows)),
    }
    for f in schema.fields:
        columns[f.name] = pa.array(rng.integers(1, vocab_size, rows))
    for s in schema.id_sequences:
        columns[s.name] = fixed_lists(rng.integers(0, vocab_size, (rows, s.length)))
    for s in schema.float_sequences:
        columns[s.name] = fixed_lists(rng.uniform(-1, 1, (rows, s.length)).astype(np.float32))
    for label in schema.labels:
        hit = rng.random(rows) < 0.2
        columns[label] = pa.array(np.where(hit, rng.uniform(0.1, 1.0, rows), 0.0))
    if schema.click_column:
        # Impression logs: every credited row clicked, about a third of the others too.
        credited = np.any([columns[label].to_numpy() > 0 for label in schema.labels], axis=0)
        columns[schema.click_column] = pa.array((credited | (rng.random(rows) < 0.3))
                                                .astype(np.int8))
    return pa.table(columns)


def write_random_dataset(root: Path, schema: Schema = MAC, *, days: int = 3, rows: int = 300,
                         seed: int = 0, vocab_size: int = 50, row_group_size: int = 1 << 18,
                         test_days: int = 1) -> Path:
    """`days - test_days` training days and `test_days` test days of random rows, plus dense
    vocabs ("i" -> i for i < vocab_size, so mapped rows equal raw ids)."""
    rng = np.random.default_rng(seed)
    for d in range(days):
        train_days = days - test_days
        path = day_path(root, "train", d) if d < train_days else day_path(root, "test", 0)
        if test_days > 1 and d >= train_days:  # several test days: test-00, test-01, ...
            path = path.with_name(f"test-{d - train_days:02d}.parquet")
        write_day(path, random_day_table(schema, rows, rng, vocab_size),
                  row_group_size=row_group_size)
    for column in schema.vocab_columns:
        write_vocab(root / "vocabs", column, [str(i) for i in range(vocab_size)])
    return root


T0 = 1_700_000_000.0
"""The first known-at time of `with_known_at`."""


def with_known_at(table: pa.Table, rng: np.random.Generator, schema: Schema = MAC) -> pa.Table:
    """`table` with a known-at column per label: T0 + a random delay of up to 4 days where the
    label is positive, null elsewhere."""
    for label, column in zip(schema.labels, schema.known_at_columns, strict=True):
        weight = table[label].to_numpy()
        times = T0 + rng.uniform(0, 4 * 86400.0, len(weight))
        table = table.append_column(column, pa.array(np.where(weight > 0, times, np.nan),
                                                     mask=weight == 0))
    return table


def add_known_at(root, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for path in sorted(root.glob("*/*.parquet")):
        write_day(path, with_known_at(pq.read_table(path), rng))


def add_click_time(root, seed: int = 1) -> None:
    """A `click_time` column: up to a day before T0, so before every known-at time of
    `with_known_at`."""
    rng = np.random.default_rng(seed)
    for path in sorted(root.glob("*/*.parquet")):
        table = pq.read_table(path)
        clicks = T0 - rng.uniform(0, 86400.0, table.num_rows)
        write_day(path, table.append_column("click_time", pa.array(clicks)))
