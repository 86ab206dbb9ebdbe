"""Hashed fields: ids hashed into N rows with a fixed, documented hash, no vocab file."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.data import Schema, prepare
from malt.data.hashing import HashLookup
from malt.data.layout import day_path, write_day, write_vocab
from malt.data.vocab_build import build_vocabs
from malt.errors import ConfigError


@given(st.lists(st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)), max_size=40),
       st.integers(1, 1000))
def test_integer_ids_hash_to_the_documented_rows(ids, buckets):
    lookup = HashLookup(buckets)
    rows = lookup.map(pa.array(ids, type=pa.int64()))
    for row, value in zip(rows, ids):
        if value is None:
            assert row == lookup.oov_index == buckets
        else:
            expected = pd.util.hash_array(np.array([value], np.int64))[0] % np.uint64(buckets)
            assert row == expected


def test_string_ids_plain_or_dictionary_encoded_get_the_same_rows():
    lookup = HashLookup(97)
    ids = pa.array(["sku-1", None, "sku-2", "sku-1", "é"])
    rows = lookup.map(ids)
    assert rows[0] == rows[3] and rows[1] == 97 and ((rows >= 0) & (rows < 98)).all()
    expected = pd.util.hash_array(np.array(["sku-1", "sku-2", "é"], dtype=object)) % 97
    assert rows[[0, 2, 4]].tolist() == expected.tolist()
    np.testing.assert_array_equal(lookup.map(ids.dictionary_encode()), rows)
    out = np.empty(5, np.int32)
    assert lookup.map_into(ids, out) == 1  # the null


SCHEMA = """
user_column = "uid"
labels = ["y"]
{extra}
[fields]
ad = ["sku", "brand"]
{tables}
"""


def schema_of(tmp_path, extra, tables=""):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SCHEMA.format(extra=extra, tables=tables)))
    return Schema.load(path)


@pytest.mark.parametrize("extra, tables, message", [
    ("hash_buckets = {uid = 10}", "", "hash_buckets names 'uid', which is not a categorical"),
    ("hash_buckets = {color = 10}", "", "hash_buckets names 'color'"),
    ("hash_buckets = {sku = 0}", "", r"hash_buckets = \{'sku': 0\}: expected a table of "
                                     "integers >= 1"),
    ("hash_buckets = {sku = 1.5}", "", r"hash_buckets = \{'sku': 1.5\}: expected a table of "
                                       "integers >= 1"),
    ('sequence_pad = "0"\nhash_buckets = {sku = 8}', '[id_sequences]\nhist = "sku"',
     "'sku' is shared by id sequences"),
])
def test_bad_hash_buckets_are_refused(tmp_path, extra, tables, message):
    with pytest.raises(ConfigError, match=message):
        schema_of(tmp_path, extra, tables)


def test_a_hashed_field_needs_no_vocab_file(tmp_path):
    schema = schema_of(tmp_path, "hash_buckets = {sku = 16}")
    assert schema.vocab_columns == ("uid", "brand")
    root = tmp_path / "d"
    for d in range(2):
        write_day(day_path(root, "test" if d else "train", d), pa.table({
            "uid": pa.array([1, 2, 3]), "sku": pa.array([10**12, 7, 10**12]),
            "brand": pa.array(["a", "b", "a"]), "y": pa.array([0.0, 1.0, 0.0])}))
    write_vocab(root / "vocabs", "uid", ["1", "2", "3"])
    assert [b.column for b in build_vocabs(root, schema)] == ["brand"]  # not sku
    dataset = prepare(root, schema)
    assert dataset.vocab.sizes["sku"] == 17
    sku = dataset.train[0].arrays()["sparse"][:, 0]
    assert sku[0] == sku[2] == HashLookup(16).map(pa.array([10**12]))[0]
    assert dataset.train[0].stats.oov["sku"] == 0
    assert schema.fingerprint() != schema_of(tmp_path, "hash_buckets = {sku = 32}").fingerprint()


def test_numeric_columns_and_hashed_fields_round_trip_through_a_dict(tmp_path):
    schema = schema_of(tmp_path, 'hash_buckets = {sku = 16}\nnumeric = {price = "log1p"}\n'
                                 'numeric_fill = 0')
    again = Schema.from_dict(schema.to_dict())
    assert again == schema and again.fingerprint() == schema.fingerprint()
