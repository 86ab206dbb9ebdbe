"""Bags (multi-hot list columns): declared in the schema, validated and cached by `prepare`,
padded into batches from the lists' offsets."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.data import Schema, prepare
from malt.data.batches import DayBatches
from malt.data.layout import write_day, write_vocab
from malt.data.reader import padded_bag
from malt.data.schema import Bag
from malt.data.summary import format_summary
from malt.data.vocab import VocabLookup
from malt.data.vocab_build import build_vocabs
from malt.errors import ConfigError, DataError

BASE = {"user_column": "buyer", "fields": {"ad": ["sku"]}, "labels": ["last"]}
ROWS = [[7, 8, 9], [], [8], [9, 9, 7, 8, 5, 6]]
"""Ragged bags: three ids, an empty bag, one id, six ids (two past max_length 4)."""


def bag_schema(**bag) -> Schema:
    return Schema.from_dict({**BASE, "bags": {"tags": {"group": "ad", "max_length": 4,
                                                       **bag}}})


def write_days(root, tags: pa.Array, *, vocab: list[int] | None = None) -> None:
    """One training day holding `tags`, the schema of `bag_schema()`, vocabs for the fields
    and, when given, for the bag."""
    n = len(tags)
    write_day(root / "train" / "day0.parquet", pa.table({
        "buyer": pa.array(np.arange(n)), "sku": pa.array(np.arange(n) % 2), "tags": tags,
        "last": pa.array(np.ones(n, dtype=np.float32))}))
    write_vocab(root / "vocabs", "buyer", [str(i) for i in range(n)])
    write_vocab(root / "vocabs", "sku", ["0", "1"])
    if vocab is not None:
        write_vocab(root / "vocabs", "tags", [str(i) for i in vocab])


@pytest.mark.parametrize("bag, key", [
    ({"pooling": "max"}, "bags.tags.pooling"),
    ({"max_length": 0}, "bags.tags.max_length"),
    ({"group": "item"}, "bags.tags.group"),
    ({"shares": "sku"}, "shares"),
])
def test_a_bad_bag_declaration_is_refused_naming_its_key(bag, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        bag_schema(**bag)


def test_a_bag_is_a_column_of_its_own_with_its_own_vocab():
    schema = bag_schema(pooling="mean")
    assert schema.bags == (Bag("tags", "ad", "mean", 4),)
    assert "tags" in schema.columns and "tags" in schema.vocab_columns
    assert schema.embedded_group_indices("ad") == [0, 1]
    assert Schema.from_dict(schema.to_dict()) == schema
    with pytest.raises(ConfigError, match="declared twice"):
        Schema.from_dict({**BASE, "bags": {"sku": {"group": "ad", "max_length": 2}}})
    hashed = Schema.from_dict({**bag_schema().to_dict(), "hash_buckets": {"tags": 10}})
    assert "tags" not in hashed.vocab_columns


def test_a_changed_bag_changes_the_schema_fingerprint_so_no_stale_cache_is_read():
    without = Schema.from_dict(BASE)
    prints = {without.fingerprint(), bag_schema().fingerprint(),
              bag_schema(max_length=5).fingerprint(), bag_schema(pooling="mean").fingerprint()}
    assert len(prints) == 4


def test_a_changed_max_length_converts_the_day_again(tmp_path):
    write_days(tmp_path, pa.array(ROWS), vocab=[5, 6, 7, 8, 9])
    first = prepare(tmp_path, bag_schema(), tmp_path / "cache", workers=1).train[0]
    again = prepare(tmp_path, bag_schema(), tmp_path / "cache", workers=1).train[0]
    wider = prepare(tmp_path, bag_schema(max_length=6), tmp_path / "cache", workers=1).train[0]
    assert first.built and not again.built and wider.built
    assert wider.arrays()["bag_lengths"][:, 0].tolist() == [3, 0, 1, 6]


@pytest.mark.parametrize("tags, what, row", [
    (pa.array([[1.0], [0.5]]), "a list of integer or string ids", 0),
    (pa.array([[1], None]), "null value", 1),
])
def test_a_bad_bag_column_is_refused_naming_file_column_and_row(tmp_path, tags, what, row):
    write_days(tmp_path, tags, vocab=[1])
    with pytest.raises(DataError) as info:
        prepare(tmp_path, bag_schema(), tmp_path / "cache", workers=1)
    error = info.value
    assert what in str(error) and error.column == "tags" and error.row == row
    assert error.file.endswith("day0.parquet")


def test_prepare_builds_the_bag_vocab_and_counts_its_oov_ids_and_truncated_rows(tmp_path):
    write_days(tmp_path, pa.array(ROWS))
    (tmp_path / "vocabs" / "tags.json").unlink(missing_ok=True)
    built = {v.column: v.ids for v in build_vocabs(tmp_path, bag_schema())}
    assert built == {"tags": 5}  # 5, 6, 7, 8, 9: ids past max_length are counted too
    assert json.loads((tmp_path / "vocabs" / "tags.json").read_text()) == {
        "5": 0, "6": 1, "7": 2, "8": 3, "9": 4}
    write_vocab(tmp_path / "vocabs", "tags", ["7", "8"])  # 9 becomes out of vocabulary
    data = prepare(tmp_path, bag_schema(), tmp_path / "cache", workers=1)
    stats = data.train[0].stats
    assert stats.oov["tags"] == 3  # 9 in row 0, twice in row 3's first four; 5, 6 cut off
    assert stats.truncated == {"tags": 1}
    assert "rows truncated to their bag's max_length: tags 1" in format_summary(data)
    arrays = data.train[0].arrays()
    assert arrays["bag_lengths"][:, 0].tolist() == [3, 0, 1, 4]
    assert arrays["bags"][:, 0].tolist() == [[0, 1, 2, 0], [0, 0, 0, 0], [1, 0, 0, 0],
                                             [2, 2, 0, 1]]


def test_a_hashed_bag_needs_no_vocab(tmp_path):
    write_days(tmp_path, pa.array([["a", "b"], []]))
    schema = Schema.from_dict({**bag_schema().to_dict(), "hash_buckets": {"tags": 7}})
    data = prepare(tmp_path, schema, tmp_path / "cache", workers=1)
    assert data.vocab.sizes["tags"] == 8
    assert data.train[0].arrays()["bag_lengths"][:, 0].tolist() == [2, 0]


def test_a_batch_pads_its_bags_to_its_longest_one(tmp_path):
    write_days(tmp_path, pa.array(ROWS), vocab=[5, 6, 7, 8, 9])
    day = prepare(tmp_path, bag_schema(), tmp_path / "cache", workers=1).train[0]
    first, second = DayBatches(day, batch_size=2)
    # rows [7, 8, 9] and []: padded to 3 with row 0; rows [8] and [9, 9, 7, 8]: to 4
    assert first["bags"].tolist() == [[[2, 3, 4]], [[0, 0, 0]]]
    assert first["bag_lengths"].tolist() == [[3], [0]]
    assert second["bags"].tolist() == [[[3, 0, 0, 0]], [[4, 4, 2, 3]]]
    assert second["bags"].dtype == second["bag_lengths"].dtype == first["sparse"].dtype
    empty = DayBatches(day, batch_size=1)
    assert list(empty)[1]["bags"].shape == (1, 1, 1)  # an empty bag keeps one position


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 20), max_size=9), min_size=1, max_size=12),
       st.integers(1, 6), st.integers(0, 3))
def test_padded_bags_match_a_row_by_row_reference(rows, cap, start):
    lookup = VocabLookup({str(i): i + 1 for i in range(15)}, source="test")
    lists = pa.array([[0], *rows], type=pa.list_(pa.int64())).slice(1)  # a sliced array
    out = np.full((len(rows), cap + start), -1, dtype=np.int32)
    lengths, oov, truncated = padded_bag(lists, lookup, cap, out, "tags", "f", 0)
    expected = np.zeros_like(out)
    for i, row in enumerate(rows):
        expected[i, :min(len(row), cap)] = [v + 1 if v < 15 else lookup.oov_index
                                            for v in row[:cap]]
    assert out.tolist() == expected.tolist()
    assert lengths.tolist() == [min(len(r), cap) for r in rows]
    assert oov == sum(v >= 15 for r in rows for v in r[:cap])
    assert truncated == sum(len(r) > cap for r in rows)
