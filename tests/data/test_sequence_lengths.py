"""Id sequences of their own lengths: `seq` is as long as the longest, each sequence padded past
its own length with its own padding row; each has its own mask, which every encoder reads;
float sequences stay aligned with the first id sequence. Ragged rows and fixed-length rows,
for `prepare` and for scoring."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from malt.data import Schema, prepare
from malt.data.batches import DayBatches
from malt.data.layout import write_day, write_vocab
from malt.data.reader import array_shapes
from malt.data.summary import format_summary
from malt.errors import ConfigError, DataError
from malt.layers import FeatureEncoder, FieldEmbeddings
from malt.models.encoders import encoder_spec
from support.conversion import convert_unlabelled

BASE = {"user_column": "buyer", "fields": {"ad": ["item", "shop"]}, "labels": ["last"],
        "sequence_length": 3, "float_sequences": ["sim"],
        "id_sequences": {"item_seq": "item", "shop_seq": {"shares": "shop", "length": 2}}}
RAGGED = Schema.from_dict(dict(BASE, ragged_sequences=True))
FIXED = Schema.from_dict(dict(BASE, sequence_pad="0"))
# Ragged: each id sequence its own number of items per row; the similarities follow item_seq.
RAGGED_ROWS = {"item_seq": [[5, 6], [], [7, 8, 9, 5]], "shop_seq": [[1, 2, 3], [1], []],
               "sim": [[0.5, 0.25], [], [0.1, 0.2, 0.3, 0.4]]}
# Fixed length: 3 items and 2 shops per row, "0" padding them.
FIXED_ROWS = {"item_seq": [[5, 6, 0], [0, 0, 0], [7, 8, 9]], "shop_seq": [[1, 2], [1, 0], [0, 0]],
              "sim": [[0.5, 0.25, 0.0], [0.0, 0.0, 0.0], [0.1, 0.2, 0.3]]}
# By hand. Vocabs: item 5 6 7 8 (9 unknown: OOV row 4), shop 1 2 3 (OOV row 3). Ragged rows
# pad with the row after the OOV row (item 5, shop 4); fixed rows with the row of "0", here
# the OOV row (item 4, shop 3). shop_seq is padded past its length 2 up to item_seq's 3.
EXPECTED = {
    "ragged": {"seq": [[[0, 1, 5], [0, 1, 4]], [[5, 5, 5], [0, 4, 4]], [[2, 3, 4], [4, 4, 4]]],
               "padding": [[[False, False, True], [False, False, True]],
                           [[True, True, True], [False, True, True]],
                           [[False, False, False], [True, True, True]]]},
    "fixed": {"seq": [[[0, 1, 4], [0, 1, 3]], [[4, 4, 4], [0, 3, 3]], [[2, 3, 4], [3, 3, 3]]],
              # the unknown 9 shares the row of "0", so it is masked too
              "padding": [[[False, False, True], [False, False, True]],
                          [[True, True, True], [False, True, True]],
                          [[False, False, True], [True, True, True]]]},
}
SIMS = [[0.5, 0.25, 0.0], [0.0, 0.0, 0.0], [0.1, 0.2, 0.3]]
CASES = {"ragged": (RAGGED, RAGGED_ROWS), "fixed": (FIXED, FIXED_ROWS)}
SHORTER_FIRST = Schema.from_dict(dict(BASE, ragged_sequences=True, float_sequences={"sim": 2},
                                      id_sequences={"shop_seq": {"shares": "shop",
                                                                 "length": 2},
                                                    "item_seq": "item"}))
"""Ragged, the first id sequence (shop_seq, 2) shorter than the longest: `sim` follows it."""
SHORTER_FIRST_ROWS = dict(RAGGED_ROWS, sim=[[0.5, 0.25, 0.125], [0.75], []])


def table(rows: dict[str, list]) -> pa.Table:
    n = len(rows["item_seq"])
    return pa.table({"buyer": pa.array(np.arange(n)), "item": pa.array([5] * n),
                     "shop": pa.array([1] * n), **{c: pa.array(v) for c, v in rows.items()},
                     "last": pa.array(np.ones(n, dtype=np.float32))})


def write(root, data: pa.Table) -> None:
    write_day(root / "train" / "day0.parquet", data)
    write_vocab(root / "vocabs", "buyer", [str(i) for i in range(data.num_rows)])
    write_vocab(root / "vocabs", "item", ["5", "6", "7", "8"])
    write_vocab(root / "vocabs", "shop", ["1", "2", "3"])


def test_id_sequences_have_their_own_lengths_and_floats_follow_the_first():
    assert [(s.name, s.length) for s in RAGGED.id_sequences] == [("item_seq", 3),
                                                                 ("shop_seq", 2)]
    assert (RAGGED.sequence_length, RAGGED.float_sequence_length) == (3, 3)
    shorter_first = Schema.from_dict(dict(BASE, sequence_pad="0", float_sequences={"sim": 2},
                                          id_sequences={"shop_seq": {"shares": "shop",
                                                                     "length": 2},
                                                        "item_seq": "item"}))
    assert (shorter_first.sequence_length, shorter_first.float_sequence_length) == (3, 2)
    assert array_shapes(shorter_first, 5)["dense_seq"][0] == (5, 1, 2)
    assert Schema.from_dict(RAGGED.to_dict()) == RAGGED


@pytest.mark.parametrize("raw, message", [
    (dict(BASE, sequence_pad="0", float_sequences={"sim": 2}),
     "the float sequence 'sim' holds 2 values and 'item_seq' 3"),
    (dict(BASE, sequence_pad="0", id_sequences={}, float_sequences={"a": 3, "b": 4}),
     "the float sequence 'b' holds 4 values and 'a' 3"),
])
def test_float_sequences_of_another_length_than_the_first_are_refused(raw, message):
    with pytest.raises(ConfigError, match=message):
        Schema.from_dict(raw)


@pytest.mark.parametrize("case", list(CASES))
def test_each_sequence_is_converted_to_its_own_length_and_masked_by_itself(tmp_path, case):
    schema, rows = CASES[case]
    write(tmp_path, table(rows))
    data = prepare(tmp_path, schema, tmp_path / "cache", workers=1)
    day = data.train[0]
    arrays = day.arrays()
    assert arrays["seq"].tolist() == EXPECTED[case]["seq"]
    np.testing.assert_array_equal(arrays["dense_seq"][:, 0], np.array(SIMS, dtype=np.float32))
    assert day.stats.oov == {"buyer": 0, "item": 0, "shop": 0, "item_seq": 1, "shop_seq": 0}
    if case == "ragged":
        assert day.stats.truncated == {"item_seq": 1, "shop_seq": 1}
        assert "item_seq 1 (length 3), shop_seq 1 (length 2)" in format_summary(data)
    batch = next(iter(DayBatches(day, batch_size=3)))
    encoder = FeatureEncoder(schema, data.vocab, dim=4, heads=2)
    assert encoder.padding(batch).tolist() == EXPECTED[case]["padding"]


@pytest.mark.parametrize("case", list(CASES))
def test_scoring_converts_as_prepare_caches_and_counts_oov_within_each_length(tmp_path, case):
    schema, rows = CASES[case]
    write(tmp_path, table(rows))
    cached = prepare(tmp_path, schema, tmp_path / "cache", workers=1).train[0].arrays()
    unlabelled = table(rows).drop_columns(["last"])
    converter, out = convert_unlabelled(schema, tmp_path / "vocabs", unlabelled)
    for name in ("seq", "dense_seq", "sparse"):
        np.testing.assert_array_equal(out[name], cached[name])
    by_row = converter.oov_by_row(unlabelled, out)
    # the padding past shop_seq's length is not an unknown shop
    assert by_row["item_seq"].tolist() == [0, 0, 1] and by_row["shop_seq"].tolist() == [0, 0, 0]


def test_rows_of_exactly_the_kept_length_are_not_counted_as_cut(tmp_path):
    write(tmp_path, table({"item_seq": [[5, 6, 7], [5]], "shop_seq": [[1, 2], [1, 2, 3]],
                           "sim": [[0.1, 0.2, 0.3], [0.4]]}))
    day = prepare(tmp_path, RAGGED, tmp_path / "cache", workers=1).train[0]
    assert day.stats.truncated == {"item_seq": 0, "shop_seq": 1}


def test_float_sequences_alone_are_cut_to_their_length_and_counted(tmp_path):
    schema = Schema.from_dict({"user_column": "buyer", "fields": {"ad": ["item"]},
                               "labels": ["last"], "ragged_sequences": True,
                               "float_sequences": {"sim": 2, "age": 2}})
    sims, ages = [[0.5, 0.25, 0.125], [], [0.75, 0.5]], [[1.0, 2.0, 3.0], [], [4.0, 5.0]]
    write(tmp_path, pa.table({"buyer": [0, 1, 2], "item": [5, 5, 5], "sim": sims, "age": ages,
                              "last": pa.array(np.ones(3, dtype=np.float32))}))
    day = prepare(tmp_path, schema, tmp_path / "cache", workers=1).train[0]
    assert day.stats.truncated == {"sim": 1}
    np.testing.assert_array_equal(day.arrays()["dense_seq"], np.array(
        [[[0.5, 0.25], [1.0, 2.0]], [[0, 0], [0, 0]], [[0.75, 0.5], [4.0, 5.0]]],
        dtype=np.float32))


@pytest.mark.parametrize("column, rows, message", [
    ("shop_seq", dict(RAGGED_ROWS, shop_seq=[[1], [2], None]), "null"),
    ("sim", dict(RAGGED_ROWS, sim=[[0.5, 0.25], [], [0.1, 2e18, 0.3, 0.4]]), "beyond"),
])
def test_a_bad_ragged_row_is_named_by_file_column_and_row(tmp_path, column, rows, message):
    write(tmp_path, table(rows))
    with pytest.raises(DataError, match=message) as info:
        prepare(tmp_path, RAGGED, tmp_path / "cache", workers=1)
    assert (info.value.column, info.value.row) == (column, 2)
    assert info.value.file.endswith("day0.parquet")


def test_only_the_float_sequences_must_hold_the_first_sequences_items(tmp_path):
    rows = dict(RAGGED_ROWS, sim=[[0.5, 0.25], [0.1], RAGGED_ROWS["sim"][2]])
    write(tmp_path, table(rows))
    with pytest.raises(DataError) as info:
        prepare(tmp_path, RAGGED, tmp_path / "cache", workers=1)
    assert "holds 1 items where 'item_seq' holds 0" in str(info.value)
    assert (info.value.column, info.value.row) == ("sim", 1)


@pytest.mark.parametrize("case", [*CASES, "shorter-first"])
@pytest.mark.parametrize("name", ["target_attention", "dnn", "dcnv2", "din"])
def test_every_encoder_ignores_what_each_sequence_pads(tmp_path, case, name):
    """Each sequence's padding row, changed, leaves the encoding alone: its mask is its own
    (with item_seq's mask, shop_seq's padded positions in row 2 would be read). With a first
    sequence shorter than the longest, SimTier reads its mask cut to the floats' length."""
    schema, rows = CASES.get(case, (SHORTER_FIRST, SHORTER_FIRST_ROWS))
    write(tmp_path, table(rows))
    data = prepare(tmp_path, schema, tmp_path / "cache", workers=1)
    batch = next(iter(DayBatches(data.train[0], batch_size=3)))
    spec = encoder_spec(name)
    torch.manual_seed(0)
    encoder = spec.build(schema, data.vocab, spec.config(embed_dim=4)).eval()
    before = encoder(batch)
    tables = next(m for m in encoder.modules() if isinstance(m, FieldEmbeddings)).tables
    with torch.no_grad():
        for s in schema.id_sequences:
            table_of = tables[schema.field_names.index(s.shares)]
            table_of.weight[data.vocab.sequence_pad[s.name]] += 3.0
    torch.testing.assert_close(encoder(batch), before)


def test_without_the_mask_each_attention_reads_its_own_length_only(tmp_path):
    """padding_mask off (the release's setting): shop_seq is read up to its length 2, not into
    the position that only pads it to item_seq's 3."""
    write(tmp_path, table(RAGGED_ROWS))
    data = prepare(tmp_path, RAGGED, tmp_path / "cache", workers=1)
    batch = next(iter(DayBatches(data.train[0], batch_size=3)))
    torch.manual_seed(0)
    encoder = FeatureEncoder(RAGGED, data.vocab, dim=4, heads=2, padding_mask=False).eval()
    before = encoder(batch)
    moved = dict(batch, seq=batch["seq"].clone())
    moved["seq"][:, 1, 2] = 0
    torch.testing.assert_close(encoder(moved), before)
    moved["seq"][:, 1, 1] = 0  # within its length, and read
    assert not torch.allclose(encoder(moved), before)
