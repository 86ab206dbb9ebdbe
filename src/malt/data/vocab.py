"""Vocab files (raw id -> embedding row) and their vectorised lookup.

A vocab is a JSON object `{"raw id": index}` (JSON keys are always strings). Raw ids in the day
files may be strings or integers. Every table gets one reserved row after the largest vocab
index: an id that is missing from the vocab maps there (out-of-vocabulary, OOV).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from malt.errors import DataError

# Integer vocabs whose key range is at most this many slots are looked up through a dense
# table (one gather); sparser or larger ones through a hash index.
_DENSE_TABLE_MAX_SLOTS = 1 << 26


class VocabLookup:
    """Maps arrays of raw ids to int32 table rows without a Python loop per element."""

    def __init__(self, mapping: dict[str, int], *, source: str):
        self.source = source
        raw_keys = list(mapping.keys())
        values = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
        if len(values) and values.min() < 0:
            bad = raw_keys[int(np.argmin(values))]
            raise DataError(f"vocab index of id '{bad}' is negative", file=source)
        self.oov_index = int(values.max()) + 1 if len(values) else 0
        self.size = self.oov_index + 1
        self.values = values.astype(np.int32)
        self._raw_keys = raw_keys
        self.int_keys = _as_int_keys(raw_keys)
        self._dense: tuple[int, np.ndarray] | None = None
        self._int_index: pd.Index | None = None
        if self.int_keys is not None and len(self.int_keys):
            lo, hi = int(self.int_keys.min()), int(self.int_keys.max())
            if hi - lo + 1 <= _DENSE_TABLE_MAX_SLOTS:
                table = np.full(hi - lo + 1, self.oov_index, dtype=np.int32)
                table[self.int_keys - lo] = self.values
                self._dense = (lo, table)
            else:
                self._int_index = pd.Index(self.int_keys)

    @cached_property
    def string_index(self) -> pd.Index:
        return pd.Index(self._raw_keys, dtype=object)

    @classmethod
    def load(cls, path: Path) -> VocabLookup:
        if not path.is_file():
            raise DataError("vocab file is missing", file=str(path))
        try:
            mapping = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"vocab file is not valid JSON: {exc}", file=str(path)) from exc
        if not isinstance(mapping, dict):
            raise DataError("vocab file must hold one JSON object {raw id: index}",
                            file=str(path))
        bad = next((k for k, v in mapping.items() if not isinstance(v, int)
                    or isinstance(v, bool)), None)
        if bad is not None:
            raise DataError(f"vocab index of id '{bad}' is not an integer", file=str(path))
        return cls(mapping, source=str(path))

    def index_of(self, raw: str) -> int:
        """Row of one raw id (the OOV row when absent)."""
        pos = self.string_index.get_indexer([raw])[0]
        return int(self.values[pos]) if pos >= 0 else self.oov_index

    def map(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Table rows of `ids` [N] as int32 [N]; nulls and unknown ids get `oov_index`."""
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        if pa.types.is_integer(ids.type) and self.int_keys is not None:
            return self._map_integers(ids)
        # Strings (or integers against a non-numeric vocab): look up each distinct value once.
        encoded = pc.dictionary_encode(pc.cast(ids, pa.string()))
        uniques = encoded.dictionary.to_numpy(zero_copy_only=False)
        pos = self.string_index.get_indexer(uniques)
        mapped_uniques = np.where(pos >= 0, self.values[pos], self.oov_index).astype(np.int32)
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        if encoded.null_count:
            codes = pc.fill_null(encoded.indices, -1).to_numpy()
            mapped_uniques = np.append(mapped_uniques, np.int32(self.oov_index))
        return mapped_uniques[codes]

    def _map_integers(self, ids: pa.Array) -> np.ndarray:
        raw = pc.fill_null(ids, 0).to_numpy().astype(np.int64, copy=False)
        if self._dense is not None:
            lo, table = self._dense
            offset = raw - lo
            inside = (offset >= 0) & (offset < len(table))
            out = table[np.where(inside, offset, 0)]
            out[~inside] = self.oov_index
        elif self._int_index is not None:
            pos = self._int_index.get_indexer(raw)
            out = np.where(pos >= 0, self.values[pos], self.oov_index).astype(np.int32)
        else:
            out = np.full(len(raw), self.oov_index, dtype=np.int32)
        if ids.null_count:
            out[ids.is_null().to_numpy(zero_copy_only=False)] = self.oov_index
        return out


def _as_int_keys(keys: list[str]) -> np.ndarray | None:
    """The keys as int64 when every key is a canonical decimal integer, else None."""
    strings = pa.array(keys, type=pa.string())
    try:
        ints = pc.cast(strings, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # "007" and "7" are different strings; only treat keys as numbers when the round trip holds.
    if len(keys) and not pc.all(pc.equal(pc.cast(ints, pa.string()), strings)).as_py():
        return None
    return ints.to_numpy()


@dataclass(frozen=True)
class VocabInfo:
    """What models need to know about the vocabs: table sizes and sequence padding rows."""

    sizes: dict[str, int]
    """Rows of the embedding table of each categorical field (vocab + the OOV row)."""
    sequence_pad: dict[str, int]
    """Row that marks a padded position, per id sequence (the OOV row if the pad id has none)."""

    def to_dict(self) -> dict:
        return {"sizes": self.sizes, "sequence_pad": self.sequence_pad}

    @classmethod
    def from_dict(cls, d: dict) -> VocabInfo:
        return cls(sizes={k: int(v) for k, v in d["sizes"].items()},
                   sequence_pad={k: int(v) for k, v in d["sequence_pad"].items()})
