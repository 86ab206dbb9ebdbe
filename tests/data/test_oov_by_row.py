"""`DayConverter.oov_by_row`: the out-of-vocabulary ids of each row, what the scoring service
tells each of the requests it converts as one table. Per row, they are what that row converted
alone counts; summed, what the table's conversion counts (padding is never counted)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from malt.data.layout import write_vocab
from malt.data.lookups import load_lookups
from malt.data.reader import DayConverter, array_shapes
from malt.data.schema import Schema

FIELDS = {"user_column": "buyer", "fields": {"ad": ["item", "shop"]}, "labels": ["last"],
          "sequence_length": 3, "bags": {"tags": {"group": "ad", "max_length": 2}}}
FIXED = Schema.from_dict({**FIELDS, "sequence_pad": "0",
                          "id_sequences": {"item_seq": "item", "shop_seq": "shop"}})
"""The pad id 0 has no row of its own in the item vocab (counted apart) but has one in shop's."""
RAGGED = Schema.from_dict({**FIELDS, "ragged_sequences": True,
                           "id_sequences": {"item_seq": "item", "shop_seq": "shop"}})


def rows(ragged: bool) -> pa.Table:
    """Rows with unknown ids (9 items, 7 shops, 'z' tags, buyer 99) here and there, in the
    kept and in the truncated part of a bag, and padding; the last row's buyer and first
    history item are null (unknown, and a null is no pad)."""
    if ragged:
        items, shops = [[5, 9], [], [9, 6, 9, 9], [6], [None, 5]], \
            [[1, 7], [], [7, 7, 2, 3], [0], [1]]
    else:
        items, shops = [[5, 9, 0], [0, 0, 0], [9, 6, 9], [6, 0, 0], [None, 5, 0]], \
            [[1, 7, 0], [0, 0, 0], [7, 7, 2], [0, 0, 0], [1, 0, 0]]
    return pa.table({"buyer": [1, 99, 2, 99, None], "item": [5, 9, 6, 9, 5],
                     "shop": [1, 2, 7, 7, 1], "item_seq": items, "shop_seq": shops,
                     "tags": [["a", "z"], [], ["z", "b", "z"], ["b", "a", "z"], ["a"]]})


@pytest.mark.parametrize("schema", [FIXED, RAGGED], ids=["fixed", "ragged"])
def test_each_rows_oov_ids_are_those_it_counts_alone(schema, tmp_path):
    write_vocab(tmp_path, "buyer", ["1", "2"])
    write_vocab(tmp_path, "item", ["5", "6"])
    write_vocab(tmp_path, "shop", ["0", "1", "2", "3"])
    write_vocab(tmp_path, "tags", ["a", "b"])
    converter = DayConverter(schema, load_lookups(schema, tmp_path), labels=False)
    table = rows(schema.ragged_sequences)

    def convert(part: pa.Table) -> tuple[dict, dict]:
        out = {name: np.empty(shape, dtype) for name, (shape, dtype)
               in array_shapes(schema, part.num_rows, labels=False).items()}
        return out, converter.convert(part, 0, "rows", out).oov

    out, oov = convert(table)
    by_row = converter.oov_by_row(table, out)
    assert set(by_row) == set(oov)
    assert {c: int(n.sum()) for c, n in by_row.items()} == oov
    for i in range(table.num_rows):
        alone = convert(table.slice(i, 1))[1]
        assert {c: int(n[i]) for c, n in by_row.items()} == alone, i
    assert all(n.dtype == np.int64 for n in by_row.values())
    # a null buyer stays on the OOV row itself; unknown ones lie past it
    assert by_row["buyer"].tolist() == [0, 1, 0, 1, 1]
    assert by_row["tags"].tolist() == [1, 0, 1, 0, 0]  # the third row's second 'z' is cut off
    assert by_row["item_seq"].tolist() == [1, 0, 2, 0, 1]  # the pad 0 is not an unknown item
    assert by_row["shop_seq"].tolist() == [1, 0, 2, 0, 0]
