"""`VocabLookup` agrees with a plain dict lookup, whatever the ids and keys look like."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.data.vocab import DENSE_TABLE_MAX_SLOTS, INDEX_SLACK, INDEX_SPREAD, VocabLookup
from malt.errors import DataError

INT64 = st.integers(-(2**63), 2**63 - 1)


def reference(mapping: dict[str, int], ids: list) -> np.ndarray:
    """The row of each id by a Python dict lookup: an integer matches its decimal text."""
    oov = max(mapping.values(), default=-1) + 1
    return np.array([oov if x is None else mapping.get(x if isinstance(x, str) else str(x), oov)
                     for x in ids], dtype=np.int32)


def check(mapping: dict[str, int], ids: list, type_: pa.DataType | None = None) -> VocabLookup:
    lookup = VocabLookup(mapping, source="test")
    expected = reference(mapping, ids)
    array = pa.array(ids, type=type_)
    np.testing.assert_array_equal(lookup.map(array), expected)
    np.testing.assert_array_equal(lookup.map(array.dictionary_encode()), expected)
    np.testing.assert_array_equal(lookup.map(pa.chunked_array([array[:3], array[3:]])), expected)
    out = np.full(len(ids), -7, dtype=np.int32)
    assert lookup.map_into(array, out) == int(np.count_nonzero(expected == lookup.oov_index))
    np.testing.assert_array_equal(out, expected)
    texts = [x if isinstance(x, str) else str(x) for x in ids if x is not None]
    assert [lookup.index_of(t) for t in texts] == reference(mapping, texts).tolist()
    return lookup


def vocab_of(keys: list[str], data) -> dict[str, int]:
    """Keys with sparse non-negative indices (duplicates allowed, as in a merged vocab)."""
    values = data.draw(st.lists(st.integers(0, 3 * len(keys) + 1), min_size=len(keys),
                                max_size=len(keys)))
    return dict(zip(keys, values))


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(st.integers(-50, 300), min_size=1, max_size=40, unique=True),
       ids=st.lists(st.one_of(st.integers(-400, 400), INT64, st.none()), max_size=60),
       data=st.data())
def test_integer_ids_against_integer_keys(keys, ids, data):
    mapping = vocab_of([str(k) for k in keys], data)
    lookup = check(mapping, ids, pa.int64())
    assert lookup.uses_dense_table


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.integers(0, 2**63 - 1), min_size=2, max_size=30, unique=True),
       picks=st.lists(st.integers(0, 29), max_size=40),
       others=st.lists(st.one_of(INT64, st.none()), max_size=20), data=st.data())
def test_hash_like_64_bit_ids(keys, picks, others, data):
    keys = [*keys, 0, DENSE_TABLE_MAX_SLOTS * 4]  # a key range too wide for a dense table
    mapping = vocab_of([str(k) for k in dict.fromkeys(keys)], data)
    ids = [keys[p % len(keys)] for p in picks] + others
    lookup = check(mapping, ids, pa.int64())
    assert not lookup.uses_dense_table


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.integers(0, 1000), min_size=1, max_size=20, unique=True),
       shift=st.sampled_from([10**12, -(10**12), 2**62]),
       ids=st.lists(st.one_of(st.integers(0, 1200), INT64, st.none()), max_size=40),
       data=st.data())
def test_narrow_key_range_far_from_zero(keys, shift, ids, data):
    mapping = vocab_of([str(k + shift) for k in keys], data)
    ids = [x if x is None or abs(x) > 2000 else x + shift for x in ids]
    lookup = check(mapping, ids, pa.int64())
    assert lookup.uses_dense_table


TEXT_KEYS = st.one_of(st.integers(-20, 20).map(str), st.sampled_from(["007", "+3", "0x1", " 4",
                                                                      "1e3", "-0", "", "ab"]),
                      st.text(max_size=4))


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(TEXT_KEYS, min_size=1, max_size=25, unique=True),
       ids=st.lists(st.one_of(TEXT_KEYS, st.none()), max_size=40), data=st.data())
def test_string_ids_against_any_keys(keys, ids, data):
    check(vocab_of(keys, data), ids, pa.string())


@settings(max_examples=150, deadline=None)
@given(keys=st.lists(TEXT_KEYS, min_size=1, max_size=25, unique=True),
       ids=st.lists(st.one_of(st.integers(-20, 20), INT64, st.none()), max_size=40),
       data=st.data())
def test_integer_ids_against_mixed_keys(keys, ids, data):
    # "007" is not the decimal text of 7: a mixed vocab is looked up as text.
    check(vocab_of(keys, data), ids, pa.int64())


@pytest.mark.parametrize("type_", [pa.int8(), pa.int32(), pa.uint16(), pa.uint64()])
def test_other_integer_types(type_):
    top = 2**64 - 1 if type_ == pa.uint64() else 100
    mapping = {str(k): i for i, k in enumerate([0, 3, 7, 100])}
    check(mapping, [0, 3, None, 7, 8, 100, top], type_)


def test_uint64_ids_beyond_int64_do_not_wrap():
    mapping = {"-1": 0, "5": 1}
    check(mapping, [2**64 - 1, 5, 2**63], pa.uint64())


@pytest.mark.parametrize("ids", [[], [None, None]])
def test_uint64_ids_without_a_value_map_to_the_oov_row(ids):
    lookup = VocabLookup({"5": 0}, source="test")
    assert lookup.map(pa.array(ids, type=pa.uint64())).tolist() == [lookup.oov_index] * len(ids)


def test_map_into_fills_a_block_in_row_order():
    lookup = VocabLookup({str(k): k + 1 for k in range(10)}, source="test")
    out = np.empty((3, 4), dtype=np.int32)
    ids = pa.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1])
    assert lookup.map_into(ids, out) == 2
    np.testing.assert_array_equal(out, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 11]])
    with pytest.raises(ValueError):
        lookup.map_into(ids, np.empty((4, 3), dtype=np.int32)[:, :2])


def test_index_of_and_sizes():
    lookup = VocabLookup({"a": 0, "b": 4}, source="test")
    assert (lookup.oov_index, lookup.size) == (5, 6)
    assert lookup.index_of("b") == 4 and lookup.index_of("zz") == 5
    assert VocabLookup({}, source="test").map(pa.array([1, None])).tolist() == [0, 0]


def test_bad_vocab_indices():
    with pytest.raises(DataError) as err:
        VocabLookup({"a": 3, "b": -1, "c": 0}, source="v.json")
    assert str(err.value) == "file v.json: vocab index of id 'b' is negative"
    with pytest.raises(DataError) as err:
        VocabLookup({"a": 2**31 - 1}, source="v.json")  # its OOV row would not fit
    assert str(err.value) == "file v.json: vocab indices must fit in int32"
    largest = VocabLookup({"a": 2**31 - 2}, source="v.json")
    assert largest.oov_index == 2**31 - 1 and largest.values.dtype == np.int32


def test_a_vocab_file_holds_distinct_indices_at_most_twice_as_many_as_its_ids(tmp_path):
    path = tmp_path / "v.json"

    def load(mapping):
        path.write_text(json.dumps(mapping))
        return VocabLookup.load(path)

    ids = 100
    sparsest = {str(i): i for i in range(ids - 1)} | {"top": INDEX_SPREAD * ids + INDEX_SLACK - 1}
    assert load(sparsest).size == 2 * ids + 1024 + 1  # the rows and the OOV row
    assert load({}).size == 1
    for top in (2 * ids + 1024, 2 * 10**9):
        with pytest.raises(DataError) as err:
            load(sparsest | {"top": top})
        assert err.value.file == str(path)
        assert f"vocab indices are too sparse: 100 ids, indices up to {top:,} (id 'top'), so " \
               f"an embedding table of {top + 1:,} rows; indices must stay below 2 x ids + " \
               "1024" in str(err.value)
        assert "`malt prepare --build-vocabs`, which writes a vocab of dense indices" \
               in str(err.value)
    with pytest.raises(DataError) as err:
        load({"a": 0, "b": 2, "c": 1, "d": 2, "e": 1, "f": 1})
    assert str(err.value).startswith(f"file {path}: ids 'c' and 'e' share index 1: each id "
                                     "needs its own row")
    # a lookup built in Python may merge ids into one row: only files are held to this
    assert VocabLookup({"a": 0, "b": 0}, source="test").size == 2


def test_index_of_one_raw_id_against_an_integer_vocab():
    lookup = VocabLookup({"7": 2, "-3": 0, "12": 1}, source="test")
    assert [lookup.index_of(t) for t in ("7", "-3", "12")] == [2, 0, 1]
    # Not an integer, not its canonical text, or outside int64: out of the vocabulary.
    for text in ("x", "07", "+7", " 7", str(2**63), str(-(2**63) - 1), "7.0"):
        assert lookup.index_of(text) == lookup.oov_index == 3, text


def test_map_into_refuses_an_output_it_cannot_fill():
    lookup = VocabLookup({"1": 0}, source="test")
    ids = pa.array([1, 2])
    for out in (np.empty(2, dtype=np.int64), np.empty(3, dtype=np.int32),
                np.empty((2, 2), dtype=np.int32)[:, 0]):
        with pytest.raises(ValueError, match="^out must be a contiguous int32 array"):
            lookup.map_into(ids, out)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "vocab file must hold one JSON object {raw id: index}"),
    ('{"a": 1, "b": "2"}', "vocab index of id 'b' is not an integer"),
    ('{"a": 1.0}', "vocab index of id 'a' is not an integer"),
    ("{not json", "vocab file is not valid JSON"),
])
def test_bad_vocab_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "user_id.json"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        VocabLookup.load(path)
    assert err.value.file == str(path)
    assert str(err.value).startswith(f"file {path}: {message}")
    with pytest.raises(DataError) as err:
        VocabLookup.load(tmp_path / "absent.json")
    assert str(err.value) == f"file {tmp_path / 'absent.json'}: vocab file is missing"


def test_a_loaded_vocab_maps_like_its_mapping(tmp_path):
    path = tmp_path / "item.json"
    path.write_text('{"10": 1, "20": 0, "x": 2}')
    lookup = VocabLookup.load(path)
    assert lookup.source == str(path)
    assert lookup.map(pa.array(["20", "x", "10", "y"])).tolist() == [0, 2, 1, 3]


@pytest.mark.parametrize("keys, dense", [
    (range(0, 8), True),      # spans every slot from 0
    ([1, 8], True),           # the largest key at the limit: the table starts at the smallest
    ([0, 8], False),          # one slot too many from 0
    (range(5, 13), True),     # a full span away from 0
    ([5, 13], False),
    (range(-3, 5), True),     # negative keys: the table starts below 0
    ([-3, 5], False),
])
def test_dense_table_boundaries(monkeypatch, keys, dense):
    monkeypatch.setattr("malt.data.vocab.DENSE_TABLE_MAX_SLOTS", 8)
    keys = list(keys)
    mapping = {str(k): 2 * i + 1 for i, k in enumerate(keys)}
    ids = [*range(min(keys) - 3, max(keys) + 4), None]
    assert check(mapping, ids).uses_dense_table is dense
    assert check(mapping, ids, pa.int16()).uses_dense_table is dense


def test_unsigned_ids_below_a_table_that_starts_below_zero():
    mapping = {str(k): k + 3 for k in range(-3, 5)}
    check(mapping, [0, 4, 5, 2**63 - 1, None], pa.uint64())
    check(mapping, [0, 4, 5, 255], pa.uint8())


@pytest.mark.parametrize("keys", [[3, 9, 2**40], [3, 9, 20]], ids=["hash", "dense"])
@pytest.mark.parametrize("encode", [False, True], ids=["plain", "dictionary"])
def test_map_into_a_block_from_every_path(keys, encode):
    lookup = VocabLookup({str(k): i for i, k in enumerate(keys)}, source="test")
    ids = pa.array([3, None, 9, 4, keys[2], 9])
    if encode:
        ids = ids.dictionary_encode()
    out = np.empty((2, 3), dtype=np.int32)
    assert lookup.map_into(ids, out) == 2
    np.testing.assert_array_equal(out, [[0, 3, 1], [3, 2, 1]])
    texts = pa.array(["a", None, "b", "a"])
    text_lookup = VocabLookup({"a": 1, "b": 0}, source="test")
    out = np.empty((2, 2), dtype=np.int32)
    text_lookup.map_into(texts, out)
    np.testing.assert_array_equal(out, [[1, 2], [0, 1]])


def test_the_smallest_int64_key():
    lowest = str(-(2**63))
    lookup = VocabLookup({lowest: 4, "0": 1}, source="test")
    assert lookup.index_of(lowest) == 4
    assert lookup.map(pa.array([-(2**63), 0, 1])).tolist() == [4, 1, 5]
