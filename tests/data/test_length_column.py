"""Id sequences given as fixed-width lists and a length column (`length_column`): row i's items
are the first n_i of its list, what follows is never read, and the rows convert as the same
rows given as ragged lists of their first n_i items; vocabs, OOV counts and cut counts see only
those items; bad lengths and bad declarations are refused."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.data import Schema, prepare
from malt.data.layout import write_vocab
from malt.data.reader import DayConverter, array_shapes, check_table
from malt.data.vocab import VocabLookup
from malt.data.vocab_build import build_vocabs
from malt.errors import ConfigError, DataError

BASE = {"user_column": "buyer", "fields": {"ad": ["item", "shop"]}, "labels": ["last"],
        "ragged_sequences": True, "sequence_length": 3, "float_sequences": ["sim"],
        "id_sequences": {"item_seq": "item", "shop_seq": {"shares": "shop", "length": 2}}}
RAGGED = Schema.from_dict(BASE)
RAGGED_FINGERPRINT = "8ef01d976188ff17"
"""`RAGGED.fingerprint()` before length columns existed: caches of such schemas stay valid."""


def counted(item_n: str = "item_n", shop_n: str = "shop_n", **changes) -> Schema:
    """`RAGGED` with item_seq counted by `item_n` and shop_seq by `shop_n`."""
    return Schema.from_dict(dict(BASE, **changes, id_sequences={
        "item_seq": {"shares": "item", "length_column": item_n},
        "shop_seq": {"shares": "shop", "length": 2, "length_column": shop_n}}))


LOOKUPS = {"buyer": VocabLookup({str(i): i for i in range(8)}, source="buyer"),
           "item": VocabLookup({"5": 0, "6": 1, "7": 2, "8": 3}, source="item"),
           "shop": VocabLookup({"1": 0, "2": 1, "3": 2}, source="shop")}
"""Items 5-8 and shops 1-3 are known; every other id is out of vocabulary."""


def table(columns: dict[str, pa.Array]) -> pa.Table:
    n = len(next(iter(columns.values())))
    return pa.table({"buyer": pa.array(np.arange(n) % 8), "item": pa.array([5] * n),
                     "shop": pa.array([1] * n), **columns,
                     "last": pa.array(np.ones(n, dtype=np.float32))})


def converted(schema: Schema, rows: pa.Table) -> tuple[dict, object, dict]:
    """(arrays, statistics, OOV ids per row) of `rows` as `prepare` and scoring convert them."""
    check_table(schema, rows, "day")
    converter = DayConverter(schema, LOOKUPS)
    out = {name: np.empty(shape, dtype)
           for name, (shape, dtype) in array_shapes(schema, rows.num_rows).items()}
    stats = converter.convert(rows, 0, "day", out)
    return out, stats, converter.oov_by_row(rows, out)


IDS = st.integers(0, 12)
FILLER_IDS = st.one_of(st.none(), st.integers(-10**12, 10**12))
FILLER_FLOATS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def sequence_rows(draw, shared: bool) -> list[dict]:
    """Rows of kept items (ids and their similarities) and fillers after them."""
    rows = []
    for _ in range(draw(st.integers(1, 7))):
        items = draw(st.lists(IDS, max_size=5))
        shops = draw(st.lists(IDS, min_size=len(items), max_size=len(items)) if shared
                     else st.lists(IDS, max_size=4))
        rows.append({
            "item_seq": items, "shop_seq": shops,
            "sim": draw(st.lists(st.floats(-1, 1), min_size=len(items), max_size=len(items))),
            "item_tail": draw(st.lists(FILLER_IDS, max_size=3)),
            "shop_tail": draw(st.lists(FILLER_IDS, max_size=3)),
            "sim_tail": draw(st.lists(FILLER_FLOATS, max_size=3))})
    return rows


def padded(kept: list[list], tails: list[list], value_type: pa.DataType, fixed: bool
           ) -> pa.Array:
    """Each row's kept items then its filler; with `fixed`, a fixed-size list column whose
    rows are filled up to the widest with nulls."""
    lists = [k + t for k, t in zip(kept, tails, strict=True)]
    if not fixed:
        return pa.array(lists, type=pa.list_(value_type))
    width = max(len(row) for row in lists)
    return pa.array([row + [None] * (width - len(row)) for row in lists],
                    type=pa.list_(value_type, width))


@settings(max_examples=80, deadline=None)
@given(st.data(), st.booleans(), st.booleans(), st.booleans())
def test_a_length_column_converts_as_ragged_lists_of_the_counted_items(data, shared, fixed,
                                                                        sliced):
    rows = data.draw(sequence_rows(shared))
    column = {name: [r[name] for r in rows] for name in rows[0]}
    ragged = table({"item_seq": pa.array(column["item_seq"], type=pa.list_(pa.int64())),
                    "shop_seq": pa.array(column["shop_seq"], type=pa.list_(pa.int64())),
                    "sim": pa.array(column["sim"], type=pa.list_(pa.float64()))})
    lengths = {"item_n": pa.array([len(r) for r in column["item_seq"]], type=pa.int32()),
               "shop_n": pa.array([len(r) for r in column["shop_seq"]], type=pa.int64())}
    schema = counted("n", "n") if shared else counted()
    given_lengths = {"n": lengths["item_n"]} if shared else lengths
    counts = table({
        "item_seq": padded(column["item_seq"], column["item_tail"], pa.int64(), fixed),
        "shop_seq": padded(column["shop_seq"], column["shop_tail"], pa.int64(), fixed),
        "sim": padded(column["sim"], column["sim_tail"], pa.float64(), fixed),
        **given_lengths})
    if sliced:  # a row before and after them, sliced off: the lists' offsets do not start at 0
        ragged, counts = (pa.concat_tables([t.slice(0, 1), t, t.slice(0, 1)]).combine_chunks()
                          .slice(1, t.num_rows) for t in (ragged, counts))
    want, want_stats, want_by_row = converted(RAGGED, ragged)
    got, got_stats, got_by_row = converted(schema, counts)
    for name in ("seq", "dense_seq", "sparse"):
        np.testing.assert_array_equal(got[name], want[name])
    assert got_stats.oov == want_stats.oov
    assert got_stats.truncated == want_stats.truncated
    assert {c: n.tolist() for c, n in got_by_row.items()} == \
        {c: n.tolist() for c, n in want_by_row.items()}


def test_the_docs_example_keeps_the_counted_items_only():
    schema = counted()
    rows = table({"item_seq": pa.array([[7, 3, 0, 0, 0], [5, 6, 7, 8, 6]]),
                  "shop_seq": pa.array([[1, None], [2, 99]]),
                  "sim": pa.array([[0.5, 0.25, math.nan, 9.0, 9.0], [0.1] * 5]),
                  "item_n": pa.array([2, 4]), "shop_n": pa.array([1, 1])})
    out, stats, by_row = converted(schema, rows)
    pad = LOOKUPS["item"].size  # the row after the OOV row
    assert out["seq"][:, 0].tolist() == [[2, LOOKUPS["item"].oov_index, pad], [0, 1, 2]]
    np.testing.assert_array_equal(out["dense_seq"][:, 0], np.array(
        [[0.5, 0.25, 0.0], [0.1] * 3], dtype=np.float32))
    # 3 is out of the item vocab; the 0s after it and the shop 99 past its count are not read
    assert (stats.oov["item_seq"], stats.oov["shop_seq"]) == (1, 0)
    assert stats.truncated == {"item_seq": 1, "shop_seq": 0}
    assert by_row["item_seq"].tolist() == [1, 0]


def write_day(root, columns: dict[str, pa.Array], vocabs: bool = True) -> None:
    """A training day of `columns` in row groups of 2 rows (a bad row 3 lies in the second),
    and the vocabs."""
    (root / "train").mkdir(parents=True, exist_ok=True)
    pq.write_table(table(columns), root / "train" / "day0.parquet", row_group_size=2)
    write_vocab(root / "vocabs", "buyer", [str(i) for i in range(8)])
    if vocabs:
        write_vocab(root / "vocabs", "item", ["5", "6", "7", "8"])
        write_vocab(root / "vocabs", "shop", ["1", "2", "3"])


GOOD = {"item_seq": pa.array([[5, 42], [6], [7, 8, 42, 42], [8, 7, 6]]),
        "shop_seq": pa.array([[1], [2, 2], [3], []]),
        "sim": pa.array([[0.5, 0.25], [0.1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3]]),
        "item_n": pa.array([1, 1, 2, 3]), "shop_n": pa.array([1, 2, 0, 0])}
"""Item 42 and shop 3 only ever lie past their row's count."""


def test_vocabs_count_only_the_counted_items(tmp_path):
    write_day(tmp_path, GOOD, vocabs=False)
    built = {v.column: v.ids for v in build_vocabs(tmp_path, counted())}
    assert built == {"item": 4, "shop": 2}  # 5 6 7 8; 1 2
    assert "42" not in (tmp_path / "vocabs" / "item.json").read_text()
    assert "3" not in (tmp_path / "vocabs" / "shop.json").read_text()


@pytest.mark.parametrize("change, column, row, what", [
    ({"item_n": pa.array([1, 1, 2, None])}, "item_n", 3, "null value"),
    ({"shop_n": pa.array([1, 2, 0, -1])}, "shop_n", 3, "length -1: a row holds 0 items or more"),
    ({"item_n": pa.array([1, 1, 2, 4])}, "item_n", 3,
     "'item_n' counts 4 items but the list of 'item_seq' holds 3"),
    ({"item_n": pa.array([1.0, 1.0, 2.0, 3.0])}, "item_n", 0, "expected an integer"),
    ({"sim": pa.array([[0.5], [0.1], [0.1, 0.2], [0.1, 0.2]])}, "sim", 3,
     "'item_n' counts 3 items but the list of 'sim' holds 2"),
    # a null list is no list of 0 items, even where the count is 0
    ({"shop_seq": pa.array([[1], [2, 2], [3], None], type=pa.list_(pa.int64()))},
     "shop_seq", 3, "null value"),
])
@pytest.mark.parametrize("reader", ["prepare", "build_vocabs"])
def test_bad_lengths_are_refused_naming_file_column_and_row(tmp_path, change, column, row,
                                                            what, reader):
    if reader == "build_vocabs" and column == "sim":
        return  # vocabs read no float sequence
    write_day(tmp_path, {**GOOD, **change}, vocabs=reader == "prepare")
    with pytest.raises(DataError) as info:
        if reader == "prepare":
            prepare(tmp_path, counted(), tmp_path / "cache", workers=1)
        else:
            build_vocabs(tmp_path, counted())
    error = info.value
    assert what in str(error), str(error)
    assert (error.column, error.row) == (column, row)
    assert error.file.endswith("day0.parquet")


def test_length_columns_are_declared_in_both_forms_and_round_trip():
    schema = counted()
    assert [s.length_column for s in schema.id_sequences] == ["item_n", "shop_n"]
    listed = Schema.from_dict(dict(BASE, id_sequences=[
        {"name": "item_seq", "shares": "item", "length_column": "item_n"},
        {"name": "shop_seq", "shares": "shop", "length": 2, "length_column": "shop_n"}]))
    assert listed == schema
    assert Schema.from_dict(schema.to_dict()) == schema
    assert schema.columns == ("buyer", "item", "shop", "item_seq", "shop_seq", "sim", "item_n",
                              "shop_n", "last")
    shared = counted("n", "n")
    assert shared.length_columns == ("n",) and shared.columns.count("n") == 1
    assert Schema.from_dict(shared.to_dict()) == shared
    assert RAGGED.fingerprint() == RAGGED_FINGERPRINT
    assert "length_column" not in str(RAGGED.to_dict())
    assert len({RAGGED.fingerprint(), schema.fingerprint(), shared.fingerprint()}) == 3


@pytest.mark.parametrize("schema, what", [
    (lambda: counted(ragged_sequences=False, sequence_pad="0"),
     "names the length column 'item_n', which needs ragged_sequences = true"),
    (lambda: counted(shop_n="item"), "the length column 'item' of 'shop_seq' is also declared"),
    (lambda: counted(item_n="last"), "the length column 'last' of 'item_seq' is also declared"),
    (lambda: counted(item_n="sim"), "the length column 'sim' of 'item_seq' is also declared"),
    (lambda: counted(shop_n="item_seq"), "'item_seq' of 'shop_seq' is also declared"),
    (lambda: counted(target_action_column="item_n"), "'item_n' of 'item_seq' is also declared"),
])
def test_bad_length_column_declarations_are_refused(schema, what):
    with pytest.raises(ConfigError, match=what):
        schema()
