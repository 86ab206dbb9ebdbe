"""Hashed id columns: a field declared with `hash_buckets = {field = N}` needs no vocab file.

Its ids are hashed into N rows with pandas' `hash_array` (its default key; SipHash-2-4 of the
UTF-8 text for string ids, a 64-bit integer mix for integer ids, so an integer column and the
same ids written as text land in different rows) modulo N. Row N is kept for missing ids.
Distinct ids may share a row: N is a memory budget for id spaces too large to list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from malt.data.vocab import checked_ids


class HashLookup:
    """The rows of a hashed field: `map_into` as `VocabLookup` does, without a vocab."""

    def __init__(self, buckets: int):
        if buckets < 1:
            raise ValueError(f"hash_buckets must be at least 1, got {buckets}")
        self.buckets = buckets
        self.oov_index = buckets
        """The row of missing (null) ids."""
        self.size = buckets + 1

    def map(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Rows of `ids` [N] as int32 [N]."""
        out = np.empty(len(ids), dtype=np.int32)
        self.map_into(ids, out)
        return out

    def map_into(self, ids: pa.Array | pa.ChunkedArray, out: np.ndarray) -> int:
        """Write the rows of `ids` [N] into the contiguous int32 `out`; returns the nulls."""
        ids = checked_ids(ids, out)
        flat = out.reshape(-1)
        if pa.types.is_dictionary(ids.type):
            rows = self._rows(ids.dictionary)
            codes = pc.fill_null(ids.indices, 0).to_numpy(zero_copy_only=False)
            flat[:] = rows[codes] if len(rows) else self.oov_index
        else:
            flat[:] = self._rows(pc.fill_null(ids, "" if _is_text(ids) else 0))
        nulls = ids.is_null().to_numpy(zero_copy_only=False)
        flat[nulls] = self.oov_index
        return int(nulls.sum())

    def _rows(self, values: pa.Array) -> np.ndarray:
        if _is_text(values):
            keys = values.cast(pa.string()).to_numpy(zero_copy_only=False).astype(object)
        else:
            keys = values.cast(pa.int64()).to_numpy(zero_copy_only=False)
        return (pd.util.hash_array(keys) % np.uint64(self.buckets)).astype(np.int32)


def _is_text(values: pa.Array) -> bool:
    return not pa.types.is_integer(values.type)
