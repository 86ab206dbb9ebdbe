"""`DayConverter.convert` with a thread pool: the columns are converted side by side, and the
arrays, the statistics (their order too) and the error raised are those of one thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from malt.data.layout import write_vocab
from malt.data.lookups import load_lookups
from malt.data.reader import DayConverter, array_shapes, open_parquet, read_chunks
from malt.data.schema import MAC, Schema
from malt.errors import DataError
from support.bag_data import SCHEMA as BAG_SCHEMA
from support.bag_data import ragged_tags
from support.mac_data import random_day_table

RAGGED = Schema.from_dict({
    "user_column": "buyer", "fields": {"ad": ["item", "shop"]}, "labels": ["last"],
    "ragged_sequences": True, "sequence_length": 3,
    "id_sequences": {"item_seq": "item", "shop_seq": "shop"}, "float_sequences": ["sim"]})
ROWS = 500


def ragged_table(rng: np.random.Generator) -> pa.Table:
    lengths = rng.integers(0, 6, ROWS)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    items = int(offsets[-1].as_py())

    def lists(values) -> pa.ListArray:
        return pa.ListArray.from_arrays(offsets, pa.array(values))

    return pa.table({"buyer": pa.array(rng.integers(0, 50, ROWS)),
                     "item": pa.array(rng.integers(1, 60, ROWS)),
                     "shop": pa.array(rng.integers(1, 60, ROWS)),
                     "item_seq": lists(rng.integers(1, 60, items)),
                     "shop_seq": lists(rng.integers(1, 60, items)),
                     "sim": lists(rng.uniform(-1, 1, items)),
                     "last": pa.array((rng.random(ROWS) < 0.2).astype(np.float32))})


def bag_table(rng: np.random.Generator) -> pa.Table:
    return pa.table({"buyer": pa.array(rng.integers(0, 40, ROWS)),
                     "city": pa.array(rng.integers(0, 8, ROWS)),
                     "sku": pa.array([f"s{i}" for i in rng.integers(0, 30, ROWS)]),
                     "tags": ragged_tags(rng, ROWS),
                     "last": pa.array(rng.random(ROWS).astype(np.float32)),
                     "first": pa.array((rng.random(ROWS) < 0.3).astype(np.float32))})


def case(name: str, tmp_path):
    """(schema, lookups, a day file of it): vocabs of 50 ids, so some ids are out of them."""
    rng = np.random.default_rng(7)
    if name == "bags":
        (tmp_path / "schema.toml").write_text(BAG_SCHEMA)
    schema = {"mac": MAC, "ragged": RAGGED}.get(name) or Schema.load(tmp_path / "schema.toml")
    table = {"mac": lambda: random_day_table(MAC, ROWS, rng, vocab_size=60),
             "ragged": lambda: ragged_table(rng), "bags": lambda: bag_table(rng)}[name]()
    for column in schema.vocab_columns:
        ids = [f"s{i}" for i in range(20)] if column == "sku" else [str(i) for i in range(50)]
        write_vocab(tmp_path / "vocabs", column, ids)
    path = tmp_path / "day.parquet"
    pq.write_table(table, path, row_group_size=ROWS)
    return schema, load_lookups(schema, tmp_path / "vocabs"), path


def converted(schema, lookups, path, *, labels: bool, pool=None, reopen=None):
    converter = DayConverter(schema, lookups, labels=labels)
    pf = open_parquet(path)
    [(offset, chunk)] = read_chunks(pf, path, 0, 0, converter.columns, reopen)
    out = {n: np.full(shape, 77, dtype) for n, (shape, dtype) in
           array_shapes(schema, chunk.num_rows, labels=labels).items()}
    return out, converter.convert(chunk, offset, str(path), out, pool)


@pytest.mark.parametrize("name", ["mac", "ragged", "bags"])
@pytest.mark.parametrize("labels", [True, False])
def test_a_pool_converts_as_one_thread_does(name, labels, tmp_path):
    schema, lookups, path = case(name, tmp_path)
    want, want_stats = converted(schema, lookups, path, labels=labels)
    opened = []

    def reopen():
        opened.append(threading.current_thread().name)
        return open_parquet(path)

    with ThreadPoolExecutor(3, thread_name_prefix="test-pool") as pool:
        got, stats = converted(schema, lookups, path, labels=labels, pool=pool, reopen=reopen)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert stats == want_stats
    for part in ("oov", "positives", "truncated", "numeric"):
        assert list(getattr(stats, part)) == list(getattr(want_stats, part))
    assert sum(want_stats.oov.values()) > 0  # the comparison covers the OOV counts
    # Column order, as the day's statistics (meta.json) and the reports list them.
    assert list(stats.oov) == [schema.user_column, *schema.field_names,
                               *(s.name for s in schema.id_sequences), *schema.bag_names]
    # The pool's threads read the row group through handles of their own.
    assert opened and all(name.startswith("test-pool") for name in opened)


def test_the_error_raised_is_the_first_in_column_order(tmp_path):
    _, lookups, path = case("mac", tmp_path)
    table = pq.read_table(path)
    sims = table["mm_feat1_seq"].combine_chunks()
    values = sims.flatten().to_numpy().copy()
    values[3 * MAC.float_sequences[1].length + 1] = np.nan  # row 3
    table = table.set_column(table.schema.get_field_index("mm_feat1_seq"), "mm_feat1_seq",
                             pa.ListArray.from_arrays(sims.offsets, pa.array(values)))
    last = table["last"].to_numpy().copy()
    last[10] = -1.0  # a later column, converted side by side with the float sequence
    table = table.set_column(table.schema.get_field_index("last"), "last", pa.array(last))
    bad = tmp_path / "bad.parquet"
    pq.write_table(table, bad)
    with pytest.raises(DataError) as alone:
        converted(MAC, lookups, bad, labels=True)
    with ThreadPoolExecutor(4) as pool, pytest.raises(DataError) as pooled:
        converted(MAC, lookups, bad, labels=True, pool=pool, reopen=lambda: open_parquet(bad))
    assert (pooled.value.file, pooled.value.column, pooled.value.row) == \
        (alone.value.file, alone.value.column, alone.value.row) == (str(bad), "mm_feat1_seq", 3)
    assert str(pooled.value) == str(alone.value)
