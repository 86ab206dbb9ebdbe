"""Vocab files (raw id -> embedding row) and their vectorised lookup.

A vocab is a JSON object `{"raw id": index}` (JSON keys are always strings). Raw ids in the day
files may be strings or integers; an integer id `7` matches the key `"7"` (its decimal text), so
a lookup behaves like `mapping.get(str(id))`. Every table gets one reserved row after the largest
vocab index: an id that is missing from the vocab, or null, maps there (out-of-vocabulary, OOV).
A vocab file must give every id its own index, and dense ones (see `INDEX_SPREAD`).

Integer ids against a vocab of canonical decimal keys go through a dense table (one gather) when
the keys span at most `DENSE_TABLE_MAX_SLOTS` slots, else through a hash index; string ids are
looked up once per distinct value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from malt.errors import DataError, os_errors_as

DENSE_TABLE_MAX_SLOTS = 1 << 26
"""Largest key range (max - min + 1) of an integer vocab looked up through a dense table."""

INDEX_SPREAD = 2
INDEX_SLACK = 1024
"""A vocab file of n ids may use indices below INDEX_SPREAD * n + INDEX_SLACK: every index is
an embedding row (with its optimiser state), so a sparser vocab mostly trains empty rows, and
one stray large index (2e9) asks for a table of that many rows. The slack leaves room for small
hand-written vocabs with gaps."""


class VocabLookup:
    """Maps arrays of raw ids to int32 table rows without a Python loop per element."""

    def __init__(self, mapping: dict[str, int], *, source: str):
        self.source = source
        raw_keys = list(mapping.keys())
        values = np.fromiter(mapping.values(), dtype=np.int64, count=len(mapping))
        if len(values) and values.min() < 0:
            bad = raw_keys[int(np.argmin(values))]
            raise DataError(f"vocab index of id '{bad}' is negative", file=source)
        if len(values) and values.max() >= np.iinfo(np.int32).max:
            raise DataError("vocab indices must fit in int32", file=source)
        self.oov_index = int(values.max()) + 1 if len(values) else 0
        self.size = self.oov_index + 1
        self.values = values.astype(np.int32)
        self._raw_keys = raw_keys
        self.int_keys = _as_int_keys(raw_keys)
        # Dense path: rows of ids base .. base + len(table) - 2, then one trailing OOV slot, so
        # that a clipped gather sends every id above the range to OOV.
        self._dense: tuple[int, np.ndarray] | None = None
        self._int_index: pd.Index | None = None
        if self.int_keys is not None and len(self.int_keys):
            lo, hi = int(self.int_keys.min()), int(self.int_keys.max())
            base = 0 if 0 <= lo and hi < DENSE_TABLE_MAX_SLOTS else lo
            if hi - base + 1 <= DENSE_TABLE_MAX_SLOTS:
                table = np.full(hi - base + 2, self.oov_index, dtype=np.int32)
                table[self.int_keys - base] = self.values
                self._dense = (base, table)
            else:
                self._int_index = pd.Index(self.int_keys)

    @cached_property
    def string_index(self) -> pd.Index:
        return pd.Index(self._raw_keys, dtype=object)

    def mapping(self) -> dict[str, int]:
        """`{raw id: index}` as the vocab file holds it."""
        return dict(zip(self._raw_keys, self.values.tolist()))

    @property
    def uses_dense_table(self) -> bool:
        """Whether integer ids are looked up through a dense table (else a hash index)."""
        return self._dense is not None

    @classmethod
    def load(cls, path: Path) -> VocabLookup:
        if not path.is_file():
            raise DataError("vocab file is missing", file=str(path))
        with os_errors_as(path, error=DataError):
            text = path.read_bytes()
        try:
            mapping = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"vocab file is not valid JSON: {exc}", file=str(path)) from exc
        if not isinstance(mapping, dict):
            raise DataError("vocab file must hold one JSON object {raw id: index}",
                            file=str(path))
        if not set(map(type, mapping.values())) <= {int}:
            bad = next(k for k, v in mapping.items() if type(v) is not int)
            raise DataError(f"vocab index of id '{bad}' is not an integer", file=str(path))
        lookup = cls(mapping, source=str(path))
        _check_rows(lookup._raw_keys, lookup.values, str(path))
        return lookup

    def index_of(self, raw: str) -> int:
        """Row of one raw id (the OOV row when absent)."""
        if self.int_keys is not None:
            # Avoids building the string index of a large numeric vocab for one lookup.
            try:
                value = int(raw)
            except ValueError:
                return self.oov_index
            if str(value) != raw or not -(2**63) <= value < 2**63:
                return self.oov_index
            return int(self.map(pa.array([value], type=pa.int64()))[0])
        pos = self.string_index.get_indexer([raw])[0]
        return int(self.values[pos]) if pos >= 0 else self.oov_index

    def map(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Table rows of `ids` [N] as int32 [N]; nulls and unknown ids get `oov_index`."""
        out = np.empty(len(ids), dtype=np.int32)
        self.map_into(ids, out)
        return out

    def map_into(self, ids: pa.Array | pa.ChunkedArray, out: np.ndarray) -> int:
        """Write the rows of `ids` [N] into the contiguous int32 array `out` (N elements, any
        shape, filled in C order); returns how many got the OOV row."""
        ids = checked_ids(ids, out)
        if pa.types.is_dictionary(ids.type):
            self._map_dictionary(ids, out)
        elif pa.types.is_integer(ids.type) and self.int_keys is not None \
                and (ids.type != pa.uint64() or _fits_int64(ids)):
            self._map_integers(ids, out)
        else:
            # Strings, or integers against a vocab of non-numeric keys: one lookup per distinct
            # value, as text.
            self._map_dictionary(pc.dictionary_encode(_as_text(ids)), out)
        return int(np.count_nonzero(out == self.oov_index))

    def _map_dictionary(self, ids: pa.DictionaryArray, out: np.ndarray) -> None:
        dictionary = ids.dictionary
        if pa.types.is_integer(dictionary.type) and self.int_keys is not None:
            uniques = self.map(dictionary)
        else:
            pos = self.string_index.get_indexer(
                _as_text(dictionary).to_numpy(zero_copy_only=False))
            uniques = np.where(pos >= 0, self.values[pos], self.oov_index).astype(np.int32)
        # A trailing OOV entry receives the null codes.
        uniques = np.append(uniques, np.int32(self.oov_index))
        codes = pc.fill_null(ids.indices, len(uniques) - 1).to_numpy()
        np.take(uniques, codes.reshape(out.shape), out=out, mode="clip")

    def _map_integers(self, ids: pa.Array, out: np.ndarray) -> None:
        raw = (pc.fill_null(ids, 0) if ids.null_count else ids).to_numpy()
        if raw.dtype != np.int64:
            raw = raw.astype(np.int64)
        if self._dense is not None:
            base, table = self._dense
            raw = raw.reshape(out.shape)
            if base == 0:
                # mode="clip" sends ids past the range to the trailing OOV slot; negative ids
                # (rare) would clip to slot 0, so they are fixed afterwards.
                np.take(table, raw, out=out, mode="clip")
                if raw.size and raw.min() < 0:
                    out[raw < 0] = self.oov_index
            else:
                inside = (raw >= base) & (raw <= base + len(table) - 2)
                np.take(table, np.where(inside, raw - base, len(table) - 1), out=out, mode="clip")
        elif self._int_index is not None:
            pos = self._int_index.get_indexer(raw).reshape(out.shape)
            out[...] = np.where(pos >= 0, self.values[pos], self.oov_index)
        else:
            out[...] = self.oov_index
        if ids.null_count:
            out[ids.is_null().to_numpy(zero_copy_only=False).reshape(out.shape)] = self.oov_index


def _check_rows(keys: list[str], values: np.ndarray, source: str) -> None:
    """Raise unless the indices `values` [n] of the ids `keys` are distinct and dense (see
    `INDEX_SPREAD`)."""
    if not len(values):
        return
    rebuild = ("move the file away and run `malt prepare --build-vocabs`, which writes a vocab "
               "of dense indices 0..n-1 from the training days")
    rows = int(values.max()) + 1
    if rows > INDEX_SPREAD * len(values) + INDEX_SLACK:
        top = keys[int(np.argmax(values))]
        raise DataError(f"vocab indices are too sparse: {len(values):,} ids, indices up to "
                        f"{rows - 1:,} (id '{top}'), so an embedding table of {rows:,} rows; "
                        f"indices must stay below {INDEX_SPREAD} x ids + {INDEX_SLACK}: number "
                        f"the ids 0, 1, 2, ... or {rebuild}", file=source)
    shared = np.flatnonzero(np.bincount(values) > 1)
    if shared.size:
        index = int(shared[0])
        first, second = (keys[i] for i in np.flatnonzero(values == index)[:2])
        raise DataError(f"ids '{first}' and '{second}' share index {index}: each id needs its "
                        "own row (ids too rare for a row of their own are left out of the "
                        f"vocab, they map to the out-of-vocabulary row); {rebuild}",
                        file=source)


def _as_text(ids: pa.Array) -> pa.Array:
    return ids if pa.types.is_string(ids.type) else pc.cast(ids, pa.string())


def _fits_int64(ids: pa.Array) -> bool:
    top = pc.max(ids).as_py()
    return top is None or top <= np.iinfo(np.int64).max


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


def checked_ids(ids: pa.Array | pa.ChunkedArray, out: np.ndarray) -> pa.Array:
    """`ids` as one array, after checking that `out` is the contiguous int32 array of one slot
    per id that a lookup's `map_into` fills."""
    if out.dtype != np.int32 or not out.flags.c_contiguous or out.size != len(ids):
        raise ValueError("out must be a contiguous int32 array with one slot per id")
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids


@dataclass(frozen=True)
class VocabInfo:
    """What models need to know about the vocabs: table sizes and sequence padding rows."""

    sizes: dict[str, int]
    """Rows of the embedding table of each categorical field (vocab + the OOV row)."""
    sequence_pad: dict[str, int]
    """Row that marks a padded position, per id sequence (the OOV row if the pad id has none)."""
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    """(shift, scale) of each numeric column, from the training days (see `malt.data.numeric`);
    set by the run's builder, not cached with the vocabs."""

    def to_dict(self) -> dict:
        return {"sizes": self.sizes, "sequence_pad": self.sequence_pad}

    @classmethod
    def from_dict(cls, d: dict) -> VocabInfo:
        return cls(sizes={k: int(v) for k, v in d["sizes"].items()},
                   sequence_pad={k: int(v) for k, v in d["sequence_pad"].items()})
