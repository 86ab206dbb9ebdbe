"""Validate one day file against a schema and convert it into contiguous arrays.

The file is streamed in record batches and written into pre-allocated `.npy` files, so memory
stays bounded by one batch whatever the size of the day. Every check names the file, the column
and the first offending row; nothing is silently dropped or coerced.

Arrays written per day (N rows, F fields, S id sequences, C float sequences, V labels, L length):
    sparse    int32   [N, F]     table rows of the categorical fields, schema order
    seq       int32   [N, S, L]  table rows of the id sequences
    dense_seq float32 [N, C, L]  float sequences
    weights   float32 [N, V]     raw attribution weights (continuous, >= 0)
    user      int64   [N]        vocab row of the grouping (user) column
and, when the schema declares them, campaign int64 [N], target_action int64 [N] (label index)
and true_weights float32 [N, V].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from malt.data.schema import Schema
from malt.data.vocab import VocabLookup
from malt.errors import DataError

READ_BATCH_ROWS = 1 << 18


@dataclass
class DayStats:
    """What `malt prepare` reports about one converted day."""

    rows: int
    users: int = 0
    positives: dict[str, int] = field(default_factory=dict)
    oov: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "users": self.users, "positives": self.positives,
                "oov": self.oov}

    @classmethod
    def from_dict(cls, d: dict) -> DayStats:
        return cls(rows=int(d["rows"]), users=int(d["users"]), positives=dict(d["positives"]),
                   oov=dict(d["oov"]))


def array_shapes(schema: Schema, rows: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Name -> (shape, dtype) of every array a day of `rows` rows is converted into."""
    n_seq, n_dense = len(schema.id_sequences), len(schema.float_sequences)
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {
        "sparse": ((rows, len(schema.fields)), np.dtype(np.int32)),
        "weights": ((rows, len(schema.labels)), np.dtype(np.float32)),
        "user": ((rows,), np.dtype(np.int64)),
    }
    if n_seq:
        length = schema.id_sequences[0].length
        shapes["seq"] = ((rows, n_seq, length), np.dtype(np.int32))
    if n_dense:
        length = schema.float_sequences[0].length
        shapes["dense_seq"] = ((rows, n_dense, length), np.dtype(np.float32))
    if schema.campaign_column:
        shapes["campaign"] = ((rows,), np.dtype(np.int64))
    if schema.target_action_column:
        shapes["target_action"] = ((rows,), np.dtype(np.int64))
    if schema.true_labels:
        shapes["true_weights"] = ((rows, len(schema.labels)), np.dtype(np.float32))
    return shapes


def open_parquet(path: Path) -> pq.ParquetFile:
    """Open a day file, reporting a truncated or corrupt file as such."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise DataError(f"not a readable parquet file (truncated or corrupt?): {exc}",
                        file=str(path)) from exc


def check_columns(schema: Schema, arrow_schema: pa.Schema, file: str) -> None:
    """Raise on missing or extra columns and on column types the schema cannot read."""
    present = set(arrow_schema.names)
    expected = set(schema.columns)
    missing = [c for c in schema.columns if c not in present]
    if missing:
        raise DataError(f"missing columns {missing}", file=file, column=missing[0])
    extra = [c for c in arrow_schema.names if c not in expected and c not in schema.ignore_columns]
    if extra:
        raise DataError(f"unexpected columns {extra}; declare them in the schema "
                        "(or list them under ignore_columns)", file=file, column=extra[0])

    def is_id(t: pa.DataType) -> bool:
        return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)

    def is_number(t: pa.DataType) -> bool:
        return pa.types.is_integer(t) or pa.types.is_floating(t)

    def list_of(t: pa.DataType, ok) -> bool:
        return (pa.types.is_list(t) or pa.types.is_large_list(t)
                or pa.types.is_fixed_size_list(t)) and ok(t.value_type)

    checks = [(c, is_id, "an integer or string id") for c in schema.vocab_columns]
    checks += [(s.name, lambda t: list_of(t, is_id), "a list of integer or string ids")
               for s in schema.id_sequences]
    checks += [(s.name, lambda t: list_of(t, is_number), "a list of numbers")
               for s in schema.float_sequences]
    checks += [(c, is_number, "a number (attribution weight)")
               for c in (*schema.labels, *schema.true_labels)]
    if schema.campaign_column:
        checks.append((schema.campaign_column, is_id, "an integer or string id"))
    if schema.target_action_column:
        checks.append((schema.target_action_column, is_id, "a label index or label name"))
    for column, ok, what in checks:
        dtype = arrow_schema.field(column).type
        if not ok(dtype):
            raise DataError(f"wrong dtype {dtype}, expected {what}", file=file, column=column)


class DayConverter:
    """Converts day files of one schema, holding the vocab lookups they share."""

    def __init__(self, schema: Schema, lookups: dict[str, VocabLookup]):
        self.schema = schema
        self.lookups = lookups

    def convert(self, path: Path, out: dict[str, np.ndarray]) -> DayStats:
        """Stream `path` into the pre-allocated arrays `out` (see `array_shapes`)."""
        pf = open_parquet(path)
        rows = pf.metadata.num_rows
        stats = DayStats(rows=rows, positives=dict.fromkeys(self.schema.labels, 0),
                         oov=dict.fromkeys(self.schema.vocab_columns, 0))
        offset = 0
        try:
            for batch in pf.iter_batches(batch_size=READ_BATCH_ROWS,
                                         columns=list(self.schema.columns)):
                self._convert_batch(batch, offset, out, stats, str(path))
                offset += batch.num_rows
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise DataError(f"not a readable parquet file (truncated or corrupt?): {exc}",
                            file=str(path), row=offset) from exc
        if offset != rows:
            raise DataError(f"file metadata says {rows} rows but {offset} could be read",
                            file=str(path))
        stats.users = int(np.unique(out["user"]).size)
        return stats

    def _convert_batch(self, batch: pa.RecordBatch, offset: int, out: dict[str, np.ndarray],
                       stats: DayStats, file: str) -> None:
        s, n = self.schema, batch.num_rows
        rows = slice(offset, offset + n)
        col = batch.column

        user = self._map(col(s.user_column), s.user_column, stats)
        out["user"][rows] = user
        sparse = np.empty((n, len(s.fields)), dtype=np.int32)
        for j, f in enumerate(s.fields):
            sparse[:, j] = self._map(col(f.name), f.name, stats)
        out["sparse"][rows] = sparse

        if s.id_sequences:
            seq = np.empty(out["seq"].shape[1:2] + (n,) + out["seq"].shape[2:], dtype=np.int32)
            for j, spec in enumerate(s.id_sequences):
                flat = _fixed_length_values(col(spec.name), spec.length, spec.name, file, offset)
                seq[j] = self._map_sequence(flat, spec.shares, spec.name,
                                            stats).reshape(n, spec.length)
            out["seq"][rows] = seq.transpose(1, 0, 2)
        if s.float_sequences:
            dense = np.empty((n,) + out["dense_seq"].shape[1:], dtype=np.float32)
            for j, spec in enumerate(s.float_sequences):
                flat = _fixed_length_values(col(spec.name), spec.length, spec.name, file, offset)
                values = _floats(flat, spec.name, file, offset, per_row=spec.length)
                dense[:, j, :] = values.reshape(n, spec.length)
            out["dense_seq"][rows] = dense

        weights = np.stack([_label_weights(col(c), c, file, offset) for c in s.labels], axis=1)
        out["weights"][rows] = weights
        for j, c in enumerate(s.labels):
            stats.positives[c] += int(np.count_nonzero(weights[:, j] > 0))
        if s.true_labels:
            out["true_weights"][rows] = np.stack(
                [_label_weights(col(c), c, file, offset) for c in s.true_labels], axis=1)
        if s.campaign_column:
            out["campaign"][rows] = self._campaign(col(s.campaign_column), file, offset)
        if s.target_action_column:
            out["target_action"][rows] = self._target_action(col(s.target_action_column), file,
                                                             offset)

    def _map(self, ids: pa.Array, column: str, stats: DayStats) -> np.ndarray:
        lookup = self.lookups[column]
        mapped = lookup.map(ids)
        stats.oov[column] += int(np.count_nonzero(mapped == lookup.oov_index))
        return mapped

    def _map_sequence(self, flat: pa.Array, shares: str, column: str, stats: DayStats
                      ) -> np.ndarray:
        lookup = self.lookups[shares]
        mapped = lookup.map(flat)
        oov = int(np.count_nonzero(mapped == lookup.oov_index))
        if lookup.index_of(self.schema.sequence_pad) == lookup.oov_index:
            # Padding is expected, not an unknown id: leave it out of the OOV count.
            oov -= _count_token(flat, self.schema.sequence_pad)
        stats.oov[column] = stats.oov.get(column, 0) + oov
        return mapped

    def _campaign(self, ids: pa.Array, file: str, offset: int) -> np.ndarray:
        column = self.schema.campaign_column
        if column in self.lookups:
            return self.lookups[column].map(ids).astype(np.int64)
        if not pa.types.is_integer(ids.type):
            raise DataError("string campaign ids need vocabs/<column>.json", file=file,
                            column=column)
        _no_nulls(ids, column, file, offset)
        return ids.to_numpy().astype(np.int64)

    def _target_action(self, values: pa.Array, file: str, offset: int) -> np.ndarray:
        column = self.schema.target_action_column
        _no_nulls(values, column, file, offset)
        labels = self.schema.labels
        if pa.types.is_integer(values.type):
            index = values.to_numpy().astype(np.int64)
        else:
            names = pa.array(labels, type=pa.string())
            found = pc.index_in(pc.cast(values, pa.string()), value_set=names)
            index = pc.fill_null(found, -1).to_numpy().astype(np.int64)
        bad = np.flatnonzero((index < 0) | (index >= len(labels)))
        if bad.size:
            raise DataError(f"target action {values[int(bad[0])].as_py()!r} is not one of the "
                            f"labels {list(labels)} (or their index)", file=file, column=column,
                            row=offset + int(bad[0]))
        return index


def _count_token(values: pa.Array, token: str) -> int:
    """How many of `values` equal the raw id `token`."""
    if pa.types.is_integer(values.type):
        try:
            scalar = pa.scalar(int(token), type=values.type)
        except (ValueError, OverflowError, pa.ArrowInvalid):
            return 0
        return int(pc.sum(pc.equal(values, scalar)).as_py() or 0)
    return int(pc.sum(pc.equal(pc.cast(values, pa.string()), token)).as_py() or 0)


def _no_nulls(values: pa.Array, column: str, file: str, offset: int) -> None:
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError("null value", file=file, column=column, row=offset + row)


def _fixed_length_values(lists: pa.Array, length: int, column: str, file: str,
                         offset: int) -> pa.Array:
    """The flattened values of a list column whose every row holds exactly `length` items."""
    _no_nulls(lists, column, file, offset)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != length)
    if wrong.size:
        row = int(wrong[0])
        raise DataError(f"sequence has length {int(lengths[row])}, the schema says {length}",
                        file=file, column=column, row=offset + row)
    return lists.flatten()


def _floats(values: pa.Array, column: str, file: str, offset: int, *, per_row: int = 1
            ) -> np.ndarray:
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0]) // per_row
        raise DataError("null value", file=file, column=column, row=offset + row)
    out = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise DataError("NaN or infinite value", file=file, column=column,
                        row=offset + int(bad[0]) // per_row)
    return out


def _label_weights(values: pa.Array, column: str, file: str, offset: int) -> np.ndarray:
    out = _floats(values, column, file, offset)
    negative = np.flatnonzero(out < 0)
    if negative.size:
        raise DataError(f"negative attribution weight {out[negative[0]]}", file=file,
                        column=column, row=offset + int(negative[0]))
    return out
