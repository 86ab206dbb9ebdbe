"""Bad input gets a clear error naming the file, the column and the first offending row."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from malt.cli import main
from malt.data import MAC, Schema, prepare
from malt.data.layout import day_path, write_day, write_vocab
from malt.data.lookups import load_lookups
from malt.data.numeric import MAX_MAGNITUDE, Moments
from malt.data.reader import ChunkStats, DayConverter, DayStats, array_shapes
from malt.data.summary import format_summary
from malt.errors import ConfigError, DataError
from support.mac_data import random_day_table, write_random_dataset

ROWS = 120


@pytest.fixture
def data(tmp_path):
    """Two training days and a test day of ROWS rows, in row groups of 32 rows."""
    return write_random_dataset(tmp_path / "d", rows=ROWS, row_group_size=32)


def rewrite(root, edit, *, day=1):
    """Apply `edit(table) -> table` to training day `day` and write it back."""
    path = day_path(root, "train", day)
    write_day(path, edit(pq.read_table(path)), row_group_size=32)
    return path


def replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def with_value(table, name, row, value):
    """`table` with `table[name][row] = value` for a scalar column."""
    values = table[name].to_pylist()
    values[row] = value
    return replace(table, name, pa.array(values, type=table.schema.field(name).type))


def with_list_item(table, name, row, item, value):
    lists = table[name].to_pylist()
    lists[row][item] = value
    return replace(table, name, pa.array(lists, type=table.schema.field(name).type))


def raised(root, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        prepare(root, **kwargs)
    return info.value


def test_missing_column(data):
    path = rewrite(data, lambda t: t.drop_columns(["ad_feat3"]))
    err = raised(data)
    assert (err.file, err.column) == (str(path), "ad_feat3")
    assert str(err) == f"file {path}, column 'ad_feat3': missing columns ['ad_feat3']"


def test_a_missing_column_names_the_closest_unnamed_one(data, capsys):
    path = rewrite(data, lambda t: t.rename_columns(
        ["ad_feat_3" if c == "ad_feat3" else c for c in t.column_names]))
    err = raised(data)
    assert (err.file, err.column) == (str(path), "ad_feat3")
    assert str(err).endswith("missing columns ['ad_feat3'] (did you mean 'ad_feat_3'?)")
    rewrite(data, lambda t: t.rename_columns(
        ["mm_seq1" if c == "mm_feat1_seq" else c for c in t.column_names]))
    err = raised(data)
    assert str(err).endswith("missing columns ['ad_feat3', 'mm_feat1_seq'] (did you mean "
                             "'ad_feat_3' for 'ad_feat3', 'mm_seq1' for 'mm_feat1_seq'?)")
    assert main(["prepare", "--data", str(data)]) == 3
    assert "did you mean 'ad_feat_3' for 'ad_feat3'" in capsys.readouterr().err


def test_unnamed_columns_are_not_read_with_one_warning(data, caplog):
    def add(name):
        return lambda t: t.append_column(name, pa.array(["x"] * t.num_rows))
    rewrite(data, add("note"), day=0)
    rewrite(data, add("note"), day=1)
    rewrite(data, add("source"), day=1)
    with caplog.at_level(logging.WARNING, logger="malt"):
        dataset = prepare(data)
    warnings = [r.getMessage() for r in caplog.records if "does not name" in r.getMessage()]
    assert warnings == [f"{data}: columns the schema does not name are not read: note (in 2 of "
                        "3 files), source (in 1 of 3 files) (declare them, list them under "
                        "ignore_columns, or set strict_columns = true to refuse such files)"]
    assert [d.rows for d in dataset.train] == [ROWS, ROWS]


def test_strict_columns_refuse_an_unnamed_column_unless_ignored(data, caplog):
    path = rewrite(data, lambda t: t.append_column("note", pa.array(["x"] * t.num_rows)))
    strict = Schema.from_dict({**_mac_dict(), "strict_columns": True})
    err = raised(data, schema=strict)
    assert (err.file, err.column) == (str(path), "note")
    assert str(err).endswith("unexpected columns ['note']; declare them in the schema, list "
                             "them under ignore_columns, or drop strict_columns")
    ignoring = Schema.from_dict({**_mac_dict(), "strict_columns": True,
                                 "ignore_columns": ["note"]})
    with caplog.at_level(logging.WARNING, logger="malt"):
        assert prepare(data, ignoring).train[1].rows == ROWS
    assert not [r for r in caplog.records if "does not name" in r.getMessage()]
    # whether unnamed columns are refused does not change how files are read: same cache
    assert strict.fingerprint() == MAC.fingerprint() != ignoring.fingerprint()
    with pytest.raises(ConfigError, match="strict_columns = 'yes': expected true or false"):
        Schema.from_dict({**_mac_dict(), "strict_columns": "yes"})


def _mac_dict():
    return {"user_column": "user_id",
            "fields": {g: [f.name for f in MAC.fields if f.group == g]
                       for g in ("user", "ad", "context")},
            "labels": list(MAC.labels),
            "id_sequences": {s.name: s.shares for s in MAC.id_sequences},
            "sequence_pad": MAC.sequence_pad,
            "float_sequences": [s.name for s in MAC.float_sequences]}


@pytest.mark.parametrize("column, values, expected, row", [
    ("user_feat0", lambda n: pa.array(np.full(n, 1.5)), "integer or string id", 0),
    ("last", lambda n: pa.array([None] * 7 + ["0.5"] * (n - 7)), "a number", 7),
    ("ad_feat0_seq", lambda n: pa.array(np.ones(n, dtype=np.int64)), "a list of integer", 0),
    ("mm_feat0_seq", lambda n: pa.array([["a"] * 20] * n), "a list of numbers", 0),
])
def test_wrong_dtype_names_the_first_offending_row(data, column, values, expected, row):
    path = rewrite(data, lambda t: replace(t, column, values(t.num_rows)))
    err = raised(data)
    assert (err.file, err.column, err.row) == (str(path), column, row)
    assert "wrong dtype" in str(err) and expected in str(err) and f"row {row}" in str(err)


@pytest.mark.parametrize("column", ["ad_feat1_seq", "mm_feat0_seq"])
def test_sequence_of_wrong_length(data, column):
    def edit(table):
        lists = table[column].to_pylist()
        lists[70] = lists[70][:19]
        return replace(table, column, pa.array(lists, type=table.schema.field(column).type))

    path = rewrite(data, edit)
    err = raised(data)
    assert (err.file, err.column, err.row) == (str(path), column, 70)
    assert "length 19" in str(err) and "20" in str(err)


def test_first_offending_row_is_reported_across_row_groups(data):
    # Row 90 sits in a later row group than row 40; with parallel workers the later group may
    # fail first, the report must still name row 40.
    path = rewrite(data, lambda t: with_value(with_value(t, "first", 90, float("nan")),
                                              "first", 40, -1.0))
    for workers in (1, 3):
        err = raised(data, workers=workers, rebuild=True)
        assert (err.file, err.column, err.row) == (str(path), "first", 40)


@pytest.mark.parametrize("value, message", [
    (float("nan"), "NaN value"), (float("inf"), "infinite value"), (None, "null value"),
    (-0.25, "negative attribution weight -0.25"),
    (1e-60, "attribution weight 1e-60 is outside the float32 range"),
    (1e39, "attribution weight 1e+39 is outside the float32 range"),
    (3.4028235e38, "attribution weight 3.4028235e+38 is outside the float32 range")])
def test_bad_label_weight(data, value, message):
    path = rewrite(data, lambda t: with_value(t, "mta", 37, value))
    err = raised(data)
    assert (err.file, err.column, err.row) == (str(path), "mta", 37)
    assert str(err).endswith(f"row 37: {message}")


def test_label_weights_up_to_the_largest_float32_are_read(data):
    largest = float(np.finfo(np.float32).max)
    rewrite(data, lambda t: with_value(t, "mta", 37, largest))
    assert prepare(data).train[1].arrays()["weights"][37, MAC.labels.index("mta")] == largest
    path = rewrite(data, lambda t: with_value(with_value(t, "mta", 37, largest), "mta", 50, 1e39))
    err = raised(data)
    assert (err.file, err.column, err.row) == (str(path), "mta", 50)


def test_an_empty_chunk_converts_to_nothing(data):
    table = pq.read_table(day_path(data, "train", 0)).slice(0, 0)
    out = {name: np.empty(shape, dtype) for name, (shape, dtype) in array_shapes(MAC, 0).items()}
    converter = DayConverter(MAC, load_lookups(MAC, data / "vocabs"))
    stats = converter.convert(table, 0, "empty", out)
    assert stats.positives == dict.fromkeys(MAC.labels, 0) and stats.above_one == {}


@pytest.mark.parametrize("value, message", [
    (float("nan"), "NaN value"), (float("-inf"), "infinite value"), (None, "null value"),
    (-1e30, "value -1e+30 is beyond +-1e+18, the largest magnitude malt reads (float32 "
            "overflows on it or on its square); correct it in the day file")])
def test_bad_float_in_sequence(data, value, message):
    path = rewrite(data, lambda t: with_list_item(t, "mm_feat1_seq", 100, 3, value))
    err = raised(data)
    assert (err.file, err.column, err.row) == (str(path), "mm_feat1_seq", 100)
    assert str(err).endswith(f"row 100: {message}")


def test_float_sequence_values_up_to_the_largest_magnitude_are_read(data):
    path = rewrite(data, lambda t: with_list_item(t, "mm_feat1_seq", 100, 3, -MAX_MAGNITUDE))
    assert prepare(data).train[1].arrays()["dense_seq"][100, 1, 3] == np.float32(-1e18)
    rewrite(data, lambda t: with_list_item(t, "mm_feat1_seq", 90, 0, 1.01e18))
    err = raised(data)
    assert (err.file, err.column, err.row) == (str(path), "mm_feat1_seq", 90)


def test_null_sequence_row(data):
    def edit(table):
        lists = table["ad_feat2_seq"].to_pylist()
        lists[5] = None
        return replace(table, "ad_feat2_seq", pa.array(lists, type=pa.list_(pa.int64())))

    path = rewrite(data, edit)
    err = raised(data)
    assert (err.file, err.column, err.row) == (str(path), "ad_feat2_seq", 5)


def test_empty_day_file(data):
    path = rewrite(data, lambda t: t.slice(0, 0))
    err = raised(data)
    assert err.file == str(path) and "empty day file" in str(err)


def test_missing_vocab_file(data):
    (data / "vocabs" / "ad_feat2.json").unlink()
    err = raised(data)
    assert err.file == str(data / "vocabs" / "ad_feat2.json")
    assert "vocab file is missing" in str(err)


def test_vocab_file_that_is_not_a_vocab(data):
    (data / "vocabs" / "user_feat1.json").write_text('{"1": "one"}')
    err = raised(data)
    assert err.file == str(data / "vocabs" / "user_feat1.json") and "not an integer" in str(err)


@pytest.mark.parametrize("vocab, message", [
    ({"1": 0, "2": 2_000_000_000}, "vocab indices are too sparse"),
    ({"1": 0, "2": 1, "3": 1}, "ids '2' and '3' share index 1"),
])
def test_vocab_file_with_sparse_or_shared_indices(data, capsys, vocab, message):
    path = data / "vocabs" / "ad_feat4.json"
    path.write_text(json.dumps(vocab))
    err = raised(data)
    assert err.file == str(path) and message in str(err)
    assert main(["prepare", "--data", str(data)]) == 3
    printed = capsys.readouterr().err
    assert str(path) in printed and message in printed and "--build-vocabs" in printed


def test_truncated_parquet(data):
    path = day_path(data, "train", 0)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    err = raised(data)
    assert err.file == str(path) and "truncated or corrupt" in str(err)


def test_corrupt_parquet_page(data):
    path = day_path(data, "train", 1)
    meta = pq.ParquetFile(path).metadata
    column = meta.row_group(2).column(MAC.columns.index("mm_feat0_seq"))
    # Flip bytes inside a data page of row group 2 (rows 64..95): the page checksum fails.
    first = column.dictionary_page_offset if column.has_dictionary_page \
        else column.data_page_offset
    start = first + column.total_compressed_size // 2
    content = bytearray(path.read_bytes())
    content[start:start + 8] = bytes(b ^ 0xFF for b in content[start:start + 8])
    path.write_bytes(bytes(content))
    err = raised(data)
    assert err.file == str(path) and "truncated or corrupt" in str(err)
    assert (err.column, err.row) == ("mm_feat0_seq", 64)


def test_not_the_mac_layout(tmp_path):
    err = raised(tmp_path)
    assert "no day files" in str(err)


def test_oov_ids_map_to_the_reserved_row_and_are_counted_once_per_file(tmp_path, caplog):
    root = tmp_path / "d"
    rng = np.random.default_rng(3)
    tables = [random_day_table(MAC, 64, rng, vocab_size=50) for _ in range(2)]
    # Day 0: ad_feat1 ids 60 and 99 are unknown, one user id is null; the sequences of ad_feat0
    # hold two unknown ids. Day 1 is clean.
    t = tables[0]
    t = with_value(with_value(t, "ad_feat1", 3, 60), "ad_feat1", 50, 99)
    t = with_value(t, "user_id", 7, None)
    t = with_list_item(with_list_item(t, "ad_feat0_seq", 9, 0, 1000), "ad_feat0_seq", 10, 19, -4)
    for i, table in enumerate((t, tables[1])):
        write_day(day_path(root, "train", i), table)
    for column in MAC.vocab_columns:
        write_vocab(root / "vocabs", column, [str(i) for i in range(50)])

    with caplog.at_level(logging.WARNING, logger="malt.data.cache"):
        dataset = prepare(root)
    day0, day1 = dataset.train
    assert day0.stats.oov["ad_feat1"] == 2 and day0.stats.oov["user_id"] == 1
    assert day0.stats.oov["ad_feat0_seq"] == 2
    assert sum(day0.stats.oov.values()) == 5 and sum(day1.stats.oov.values()) == 0
    arrays = day0.arrays()
    oov = 50  # vocab rows 0..49, then the reserved row
    field = MAC.field_names.index("ad_feat1")
    assert arrays["sparse"][3, field] == oov and arrays["sparse"][50, field] == oov
    assert arrays["user"][7] == oov
    assert arrays["seq"][9, 0, 0] == oov and arrays["seq"][10, 0, 19] == oov
    assert dataset.vocab.sizes["ad_feat1"] == 51
    warnings = [r.getMessage() for r in caplog.records if "out-of-vocabulary" in r.getMessage()]
    assert len(warnings) == 1
    assert str(day_path(root, "train", 0)) in warnings[0] and "ad_feat1 2" in warnings[0]
    summary = format_summary(dataset)
    assert "ad_feat1 2" in summary and "user_id 1" in summary and "ad_feat0_seq 2" in summary


def test_padding_outside_the_vocab_is_not_counted_as_oov(tmp_path):
    root = write_random_dataset(tmp_path / "d", days=1, rows=40)
    # Vocabs without the pad id "0": padded positions map to the OOV row, uncounted.
    for column in MAC.vocab_columns:
        write_vocab(root / "vocabs", column, [str(i) for i in range(1, 50)])
    dataset = prepare(root)
    table = pq.read_table(dataset.test[0].source)
    pads = sum(int(np.count_nonzero(np.concatenate(table[s.name].to_numpy(zero_copy_only=False))
                                    == 0)) for s in MAC.id_sequences)
    assert pads > 0
    assert all(dataset.test[0].stats.oov[s.name] == 0 for s in MAC.id_sequences)
    assert dataset.vocab.sequence_pad["ad_feat0_seq"] == dataset.vocab.sizes["ad_feat0"] - 1


def test_fixed_size_list_columns_are_read(tmp_path):
    root = write_random_dataset(tmp_path / "d", days=1, rows=30)
    path = day_path(root, "test", 0)
    table = pq.read_table(path)
    for s in (*MAC.id_sequences, *MAC.float_sequences):
        values = table[s.name].combine_chunks()
        table = replace(table, s.name, pa.FixedSizeListArray.from_arrays(values.flatten(), 20))
    write_day(path, table)
    arrays = prepare(root).test[0].arrays()
    np.testing.assert_array_equal(arrays["seq"][:, 1, :], np.stack(
        table["ad_feat1_seq"].to_numpy(zero_copy_only=False)))


def test_label_weights_above_one_are_reported_once_per_column(data, caplog):
    # day 0: `last` above 1 at rows 40 (second row group) and 100; day 1: at row 5, and `mta`
    # at row 70; `first` is 1.0 at most (not above)
    rewrite(data, lambda t: with_value(with_value(t, "last", 100, 3.0), "last", 40, 1.5), day=0)
    rewrite(data, lambda t: with_value(with_value(with_value(t, "last", 5, 2.0), "mta", 70, 7.25),
                                       "first", 9, 1.0), day=1)

    def warned(**kwargs):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="malt"):
            dataset = prepare(data, **kwargs)
        return dataset, [r.getMessage() for r in caplog.records if "above 1" in r.getMessage()]

    dataset, warnings = warned()
    assert warnings == [
        f"{data}: label weights above 1 (binary training uses weight > 0 and weighted training "
        "clips at 1, so such a row counts as one conversion; fine for a click credited by "
        "several conversions, not for a column of counts or amounts): last 3 rows (first: file "
        f"{day_path(data, 'train', 0)}, row 40), mta 1 rows (first: file "
        f"{day_path(data, 'train', 1)}, row 70)"]
    assert dataset.train[0].stats.above_one == {"last": (2, 40)}
    assert dataset.train[1].arrays()["weights"][70, MAC.labels.index("mta")] == 7.25
    assert warned()[1] == []  # said when the days are converted, not on every later run
    assert warned(rebuild=True)[1] == warnings


def test_chunk_statistics_add_up():
    first = ChunkStats({"last": 3}, {"item": 1}, {("a", "b"), ("a", "c")},
                       {"price": Moments.of(np.array([1.0, 2.0]))}, {"last": (2, 70)})
    total = ChunkStats({}, {})
    for chunk in (first, ChunkStats({"last": 4, "mta": 1}, {"item": 2}, {("a", "b")},
                                    {"price": Moments.of(np.array([4.0]))},
                                    {"last": (5, 12), "mta": (1, 90)})):
        total.add(chunk)
    assert (total.positives, total.oov) == ({"last": 7, "mta": 1}, {"item": 3})
    assert total.same_binary == {("a", "b")}
    assert total.above_one == {"last": (7, 12), "mta": (1, 90)}
    merged, exact = total.numeric["price"], Moments.of(np.array([1.0, 2.0, 4.0]))
    assert merged.count == exact.count and merged.to_list() == pytest.approx(exact.to_list())


def test_labels_equal_once_binarised_on_every_training_row_are_reported(data, caplog):
    def halve_last_into_linear(table):
        return replace(table, "linear", pc.multiply(table["last"], 0.5).cast(
            table.schema.field("linear").type))
    for day in (0, 1):
        rewrite(data, halve_last_into_linear, day=day)

    def reported():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="malt"):
            dataset = prepare(data)
        return dataset, [r.getMessage() for r in caplog.records if "binarised" in r.getMessage()]
    dataset, warnings = reported()
    assert warnings == [f"{data}: labels equal once binarised on every training row (as "
                        "auxiliary tasks of each other they add nothing): last = linear"]
    assert dataset.train[0].stats.same_binary == [("last", "linear")]
    assert reported()[1] == warnings  # from the cache's record, without converting again
    # one row that tells them apart on one day is enough
    rewrite(data, lambda t: with_value(t, "linear", int(np.flatnonzero(
        np.asarray(t["last"]) == 0)[0]), 0.25), day=1)
    dataset, warnings = reported()
    assert warnings == [] and dataset.train[0].stats.same_binary == [("last", "linear")]
    assert dataset.train[1].stats.same_binary == []
    # days cached before malt recorded the pairs say nothing either way
    old = DayStats.from_dict({"rows": 3, "users": 1, "positives": {}, "oov": {}})
    assert old.same_binary is None
