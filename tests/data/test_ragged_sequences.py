"""Sequences whose rows hold any number of items (`ragged_sequences = true`): cut and padded
to the declared length from the lists' offsets, the padding mask following each row's length;
the same conversion for `prepare` and for scoring (`malt predict`, the service)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from malt.data import Schema, prepare
from malt.data.batches import DayBatches
from malt.data.layout import write_day, write_vocab
from malt.data.summary import format_summary
from malt.data.vocab_build import build_vocabs
from malt.errors import ConfigError, DataError
from malt.layers import FeatureEncoder
from support.conversion import convert_unlabelled

RAW = {"user_column": "buyer", "fields": {"ad": ["item", "shop"]}, "labels": ["last"],
       "ragged_sequences": True, "sequence_length": 3,
       "id_sequences": {"item_seq": "item", "shop_seq": "shop"}, "float_sequences": ["sim"]}
SCHEMA = Schema.from_dict(RAW)
ITEMS = [[5, 6], [], [7, 8, 9, 5]]
SHOPS = [[1, 2], [], [3, 1, 2, 3]]
SIMS = [[0.5, 0.25], [], [0.1, 0.2, 0.3, 0.4]]


def table(items=ITEMS, shops=SHOPS, sims=SIMS) -> pa.Table:
    n = len(items)
    return pa.table({"buyer": pa.array(np.arange(n)), "item": pa.array([5] * n),
                     "shop": pa.array([1] * n), "item_seq": pa.array(items),
                     "shop_seq": pa.array(shops), "sim": pa.array(sims),
                     "last": pa.array(np.ones(n, dtype=np.float32))})


def write(root, data: pa.Table) -> None:
    write_day(root / "train" / "day0.parquet", data)
    write_vocab(root / "vocabs", "buyer", [str(i) for i in range(data.num_rows)])
    write_vocab(root / "vocabs", "item", ["5", "6", "7", "8"])  # 9 is out of vocabulary
    write_vocab(root / "vocabs", "shop", ["0", "1", "2", "3"][1:])


def test_ragged_sequences_need_no_declared_pad_and_change_the_fingerprint():
    assert SCHEMA.ragged_sequences
    assert Schema.from_dict(SCHEMA.to_dict()) == SCHEMA
    fixed = dict(RAW, ragged_sequences=False, sequence_pad="0")
    assert Schema.from_dict(fixed).fingerprint() != SCHEMA.fingerprint()
    with pytest.raises(ConfigError, match="declare sequence_pad"):
        Schema.from_dict(dict(RAW, ragged_sequences=False))


def test_rows_are_cut_and_padded_to_the_length_and_counted(tmp_path):
    write(tmp_path, table())
    data = prepare(tmp_path, SCHEMA, tmp_path / "cache", workers=1)
    day = data.train[0]
    arrays = day.arrays()
    pad_item, pad_shop = data.vocab.sequence_pad["item_seq"], data.vocab.sequence_pad["shop_seq"]
    # a padding row of its own after each table's OOV row (4 and 3), so an unknown id (9) is
    # not taken for padding
    assert (pad_item, pad_shop) == (5, 4)
    assert (data.vocab.sizes["item"], data.vocab.sizes["shop"]) == (6, 5)
    assert arrays["seq"][:, 0].tolist() == [[0, 1, 5], [5, 5, 5], [2, 3, 4]]
    assert arrays["seq"][:, 1].tolist() == [[0, 1, 4], [4, 4, 4], [2, 0, 1]]
    np.testing.assert_array_equal(arrays["dense_seq"][:, 0], np.array(
        [[0.5, 0.25, 0.0], [0.0, 0.0, 0.0], [0.1, 0.2, 0.3]], dtype=np.float32))
    assert day.stats.oov["item_seq"] == 1  # 9 in row 2; the padding is not counted
    assert day.stats.truncated == {"item_seq": 1, "shop_seq": 1}
    assert "rows cut to their sequence's length: item_seq 1 (length 3), shop_seq 1 (length 3)" \
        in format_summary(data)
    batch = next(iter(DayBatches(day, batch_size=3)))
    vocab = data.vocab
    encoder = FeatureEncoder(SCHEMA, vocab, dim=4, heads=2)
    # the mask follows each row's length: 2, 0 and 4 (cut to 3) items
    assert encoder.padding(batch)[:, 0].tolist() == [
        [False, False, True], [True, True, True], [False, False, False]]
    assert torch.isfinite(encoder(batch)).all()


def test_scoring_converts_ragged_rows_as_prepare_caches_them(tmp_path):
    write(tmp_path, table(items=[[5, 0], [], [7, 8, 9, 5]]))  # "0": an id like any other
    cached = prepare(tmp_path, SCHEMA, tmp_path / "cache", workers=1).train[0].arrays()
    unlabelled = table(items=[[5, 0], [], [7, 8, 9, 5]]).drop_columns(["last"])
    _, out = convert_unlabelled(SCHEMA, tmp_path / "vocabs", unlabelled)
    for name in ("seq", "dense_seq", "sparse"):
        np.testing.assert_array_equal(out[name], cached[name])
    assert out["seq"][0, 0].tolist() == [0, 4, 5]  # 5; "0", out of vocabulary; padding


@pytest.mark.parametrize("change, column, row, what", [
    ({"sims": [[0.5, 0.25], [], [0.1, 0.2, 0.3]]}, "sim", 2,
     "holds 3 items where 'item_seq' holds 4"),
    ({"sims": [[0.5, 0.25], [0.1], SIMS[2]]}, "sim", 1, "position-aligned"),
    ({"sims": [[0.5, None], [], SIMS[2]]}, "sim", 0, "NaN value"),
])
def test_bad_ragged_rows_are_refused_naming_file_column_and_row(tmp_path, change, column,
                                                                row, what):
    write(tmp_path, table(**change))
    with pytest.raises(DataError) as info:
        prepare(tmp_path, SCHEMA, tmp_path / "cache", workers=1)
    error = info.value
    assert what in str(error) and error.column == column and error.row == row
    assert error.file.endswith("day0.parquet")


def test_vocabs_count_every_item_of_a_ragged_sequence(tmp_path):
    write(tmp_path, table(items=[[5, 0], [], [7, 8, 9, 5]]))
    (tmp_path / "vocabs" / "item.json").unlink()
    built = {v.column: v.ids for v in build_vocabs(tmp_path, SCHEMA)}
    assert built == {"item": 5}  # 0, 5, 7, 8, 9: "0" is an id, not padding
