"""Validate day files against a schema and convert them, chunk by chunk, into arrays.

A chunk is a slice of rows of one day file (a parquet row group, or part of a large one). Every
check names the file, the column and the first offending row; nothing is silently dropped or
coerced. Ids missing from their vocab (and null ids) map to the vocab's out-of-vocabulary row
and are counted.

Arrays of one day (N rows, F fields, S id sequences, C float sequences, V labels; L the
longest id sequence's length, L_c the float sequences' length, that of the first id sequence):
    sparse    int32   [N, F]     table rows of the categorical fields, schema order
    seq       int32   [N, S, L]  table rows of the id sequences, each padded past its own
                                 length with its padding row
    dense_seq float32 [N, C, L_c] float sequences
    weights   float32 [N, V]     raw attribution weights (continuous, >= 0)
    user      int64   [N]        vocab row of the grouping (user) column
    bags      int32   [N, K, M]  table rows of each bag's first ids, padded with row 0
    bag_lengths int32 [N, K]     ids kept per bag (at most its `max_length`; M is the largest)
and, when the schema declares them, campaign int64 [N], target_action int64 [N] (label index,
-1 for a target outside the labels), true_weights float32 [N, V] and reported float32 [N, V];
and, when the day file holds the labels' known-at columns, known_at float64 [N, V] (unix
seconds at which each label's credit became known, NaN where the label is 0); and, when it
holds the click-time column (`Schema.click_time`), click_time float64 [N] (unix seconds); and,
for impression logs (`Schema.click_column`), click float32 [N] (1 for a clicked impression).
"""

from __future__ import annotations

import difflib
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from malt.data.hashing import HashLookup
from malt.data.lookups import vocab_info
from malt.data.numeric import MAX_MAGNITUDE, Moments
from malt.data.schema import FloatSequence, IdSequence, Schema
from malt.data.vocab import VocabLookup
from malt.errors import DataError, file_error

READ_CHUNK_ROWS = 1 << 18
"""Rows converted at a time; a row group up to twice this size is read whole."""

OTHER_TARGET = "other"
"""Target-action name of campaigns whose target is none of the labels (stored as -1)."""

_READ_ERRORS = (pa.ArrowInvalid, pa.ArrowIOError, OSError)


@dataclass
class DayStats:
    """What `malt prepare` reports about one converted day."""

    rows: int
    users: int = 0
    positives: dict[str, int] = field(default_factory=dict)
    oov: dict[str, int] = field(default_factory=dict)
    same_binary: list[tuple[str, str]] | None = None
    """Pairs of labels whose binarised columns are equal on every row of the day (None: not
    known, for days cached before malt recorded it)."""
    numeric: dict[str, Moments] = field(default_factory=dict)
    """Moments of each numeric column the schema standardises."""
    above_one: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Label -> (rows, first row) of its weights above 1, for the labels that have some."""
    known_at: bool = False
    """The day file holds the labels' known-at columns (cached as the `known_at` array)."""
    click_time: bool | None = False
    """The day file holds the click-time column (cached as the `click_time` array); None for
    days cached before malt read it."""
    truncated: dict[str, int] = field(default_factory=dict)
    """Bag -> rows holding more ids than its `max_length` (their first ids are kept); with
    ragged sequences, the first sequence -> rows holding more items than its length."""

    def to_dict(self) -> dict:
        return {"rows": self.rows, "users": self.users, "positives": self.positives,
                "oov": self.oov, "same_binary": self.same_binary, "truncated": self.truncated,
                "numeric": {c: m.to_list() for c, m in self.numeric.items()},
                "above_one": {c: list(v) for c, v in self.above_one.items()},
                "known_at": self.known_at, "click_time": self.click_time}

    @classmethod
    def from_dict(cls, d: dict) -> DayStats:
        same = d.get("same_binary")
        return cls(rows=int(d["rows"]), users=int(d["users"]), positives=dict(d["positives"]),
                   oov=dict(d["oov"]),
                   same_binary=None if same is None else [(a, b) for a, b in same],
                   numeric={c: Moments.from_list(m) for c, m in d.get("numeric", {}).items()},
                   above_one={c: (int(n), int(row))
                              for c, (n, row) in d.get("above_one", {}).items()},
                   known_at=bool(d.get("known_at", False)),
                   click_time=None if d.get("click_time") is None else bool(d["click_time"]),
                   truncated=dict(d.get("truncated", {})))


@dataclass
class ChunkStats:
    """Positive counts per label and OOV counts per id column of one chunk, and the pairs of
    labels equal once binarised on all of its rows (None before any chunk is added)."""

    positives: dict[str, int]
    oov: dict[str, int]
    same_binary: set[tuple[str, str]] | None = None
    numeric: dict[str, Moments] = field(default_factory=dict)
    above_one: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Label -> (rows, first row) of its weights above 1."""
    truncated: dict[str, int] = field(default_factory=dict)
    """Bag or ragged sequence -> rows cut to its length (every id sequence; float sequences
    alone: the first)."""

    def add(self, other: ChunkStats) -> None:
        for mine, theirs in ((self.positives, other.positives), (self.oov, other.oov),
                             (self.truncated, other.truncated)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        for key, (n, row) in other.above_one.items():
            known, first = self.above_one.get(key, (0, row))
            self.above_one[key] = (known + n, min(first, row))
        for key, moments in other.numeric.items():
            self.numeric[key] = self.numeric.get(key, Moments()).merge(moments)
        if other.same_binary is not None:
            self.same_binary = other.same_binary if self.same_binary is None else \
                self.same_binary & other.same_binary


def same_binary_pairs(weights: np.ndarray, labels: tuple[str, ...]) -> set[tuple[str, str]]:
    """Pairs (i < j) of label columns of `weights` [N, K] whose `> 0` columns are equal."""
    positive = weights > 0
    equal = (positive[:, :, None] == positive[:, None, :]).all(axis=0)
    return {(labels[i], labels[j]) for i, j in zip(*np.nonzero(np.triu(equal, k=1)))}


def read_columns(schema: Schema, *, labels: bool = True) -> tuple[str, ...]:
    """The columns a conversion reads: every column of the schema, or without `labels` the
    features (user, fields, sequences, numeric columns) and the target-action column, which
    describes the ad's campaign and is known when a row is scored."""
    if labels:
        return schema.columns
    label_columns = {*schema.labels, *schema.true_labels, *schema.reported_labels,
                     schema.campaign_column, schema.click_column}
    return tuple(c for c in schema.columns if c not in label_columns)


def user_groups(column: pa.Array | pa.ChunkedArray, rows: np.ndarray, oov_index: int
                ) -> np.ndarray:
    """The user group of every row, int64 [N], from the user column's vocab rows `rows` [N]:
    the row itself for a user the vocab holds; for one it does not, `oov_index` + 1 + a 62-bit
    hash of the id's text (an integer id as its decimal text, as vocab keys are), so that every
    distinct unknown user is a group of its own. GAUC is a mean over users: sharing the OOV row
    would pool every user first seen at test time into one. Null ids stay on the OOV row.

    Distinct ids share a group only if their hashes collide (about n² / 2⁶³ for n unknown
    users); the same id gets the same group in every chunk and day file."""
    groups = rows.astype(np.int64)
    unseen = np.flatnonzero(rows == oov_index)
    if not unseen.size:
        return groups
    raw = column.take(pa.array(unseen))
    raw = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
    if pa.types.is_dictionary(raw.type):
        raw = raw.dictionary_decode()
    valid = raw.is_valid().to_numpy(zero_copy_only=False)
    text = pc.cast(raw.filter(pa.array(valid)), pa.string())
    keys = text.to_numpy(zero_copy_only=False).astype(object)
    hashed = (pd.util.hash_array(keys) >> np.uint64(2)).astype(np.int64)
    groups[unseen[valid]] = oov_index + 1 + hashed
    return groups


def array_shapes(schema: Schema, rows: int, *, labels: bool = True, known_at: bool = False,
                 click_time: bool = False) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Name -> (shape, dtype) of every array a day of `rows` rows is converted into (without
    `labels`: the arrays of `read_columns(schema, labels=False)`; with `known_at`, the day
    file holds the known-at columns; with `click_time`, the click-time column)."""
    n_seq, n_dense = len(schema.id_sequences), len(schema.float_sequences)
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {
        "sparse": ((rows, len(schema.fields)), np.dtype(np.int32)),
        "user": ((rows,), np.dtype(np.int64)),
    }
    if labels:
        shapes["weights"] = ((rows, len(schema.labels)), np.dtype(np.float32))
    if n_seq:
        shapes["seq"] = ((rows, n_seq, schema.sequence_length), np.dtype(np.int32))
    if n_dense:
        shapes["dense_seq"] = ((rows, n_dense, schema.float_sequence_length),
                               np.dtype(np.float32))
    if schema.numeric:
        shapes["numeric"] = ((rows, len(schema.numeric)), np.dtype(np.float32))
    if schema.bags:
        shapes["bags"] = ((rows, len(schema.bags), schema.bag_width), np.dtype(np.int32))
        shapes["bag_lengths"] = ((rows, len(schema.bags)), np.dtype(np.int32))
    if schema.target_action_column:
        shapes["target_action"] = ((rows,), np.dtype(np.int64))
    if not labels:
        return shapes
    if schema.campaign_column:
        shapes["campaign"] = ((rows,), np.dtype(np.int64))
    if schema.click_column:
        shapes["click"] = ((rows,), np.dtype(np.float32))
    if schema.true_labels:
        shapes["true_weights"] = ((rows, len(schema.labels)), np.dtype(np.float32))
    if schema.reported_labels:
        shapes["reported"] = ((rows, len(schema.labels)), np.dtype(np.float32))
    if known_at:
        # float64: unix seconds in float32 would be rounded to about two minutes.
        shapes["known_at"] = ((rows, len(schema.labels)), np.dtype(np.float64))
    if click_time:
        shapes["click_time"] = ((rows,), np.dtype(np.float64))
    return shapes


def holds_click_time(schema: Schema, pf: pq.ParquetFile, file: str) -> bool:
    """Whether the day file holds the click-time column (`Schema.click_time`), a number or a
    timestamp; another type is an error."""
    if schema.click_time not in pf.schema_arrow.names:
        return False
    _check_time_column(pf, schema.click_time, "a click time", file)
    return True


def holds_known_at(schema: Schema, pf: pq.ParquetFile, file: str) -> bool:
    """Whether the day file holds the labels' known-at columns (`Schema.known_at_columns`):
    all of them (each a number or a timestamp) or none; a file with some is an error."""
    names = set(pf.schema_arrow.names)
    columns = schema.known_at_columns
    present = [c for c in columns if c in names]
    if not present:
        return False
    if len(present) < len(columns):
        missing = [c for c in columns if c not in names]
        raise DataError(f"the file holds the known-at columns {present} but not {missing}; "
                        "give every label a known-at column or none", file=file,
                        column=missing[0])
    for column in columns:
        _check_time_column(pf, column, "a known-at time", file)
    return True


def _check_time_column(pf: pq.ParquetFile, column: str, what: str, file: str) -> None:
    """Refuse a time column that is neither a number (unix seconds) nor a timestamp."""
    dtype = pf.schema_arrow.field(column).type
    if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)
            or pa.types.is_timestamp(dtype)):
        raise DataError(f"wrong dtype {dtype}, expected {what} (unix seconds or a timestamp)",
                        file=file, column=column)


def open_parquet(path: Path, metadata: pq.FileMetaData | None = None) -> pq.ParquetFile:
    """Open a day file, reporting a truncated or corrupt file as such."""
    try:
        return pq.ParquetFile(path, metadata=metadata, page_checksum_verification=True)
    except _READ_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            # The system refused the file (pyarrow's errors of its content carry no errno).
            raise file_error(exc, path, error=DataError) from exc
        raise DataError(f"not a readable parquet file (truncated or corrupt?): {exc}",
                        file=str(path)) from exc


class RowGroup:
    """The rows of one parquet row group; each column is read when asked for, so that only one
    decoded column is held in memory at a time. With `reopen` (a function that opens the file
    again), a thread other than the one that made it reads through a handle of its own."""

    def __init__(self, pf: pq.ParquetFile, path: Path, index: int, start: int,
                 reopen: Callable[[], pq.ParquetFile] | None = None):
        self._pf, self._path, self._index, self._start = pf, path, index, start
        self.num_rows = pf.metadata.row_group(index).num_rows
        self._reopen, self._owner = reopen, threading.get_ident()
        self._handles: dict[int, pq.ParquetFile] = {}

    def _file(self) -> pq.ParquetFile:
        thread = threading.get_ident()
        if self._reopen is None or thread == self._owner:
            return self._pf
        if thread not in self._handles:
            self._handles[thread] = self._reopen()
        return self._handles[thread]

    def column(self, name: str) -> pa.Array:
        try:
            table = self._file().read_row_group(self._index, columns=[name], use_threads=False)
        except _READ_ERRORS as exc:
            raise DataError(f"not a readable parquet file (truncated or corrupt?): {exc}",
                            file=str(self._path), column=name, row=self._start) from exc
        if table.num_rows != self.num_rows:
            raise DataError(f"row group {self._index} should hold {self.num_rows} rows but "
                            f"{table.num_rows} could be read (truncated or corrupt?)",
                            file=str(self._path), column=name, row=self._start)
        return chunk_column(table, name)


def read_chunks(pf: pq.ParquetFile, path: Path, row_group: int, start: int,
                columns: list[str], reopen: Callable[[], pq.ParquetFile] | None = None
                ) -> Iterator[tuple[int, RowGroup | pa.RecordBatch]]:
    """(first row in the file, rows) of one row group, in chunks of bounded size: the row
    group itself (read through `reopen`'s handles by other threads, see `RowGroup`), or
    record batches of `READ_CHUNK_ROWS` rows when it is much larger."""
    rows = pf.metadata.row_group(row_group).num_rows
    if rows <= 2 * READ_CHUNK_ROWS:
        yield start, RowGroup(pf, path, row_group, start, reopen)
        return
    offset = start
    try:
        for chunk in pf.iter_batches(batch_size=READ_CHUNK_ROWS, row_groups=[row_group],
                                     columns=columns, use_threads=False):
            yield offset, chunk
            offset += chunk.num_rows
    except _READ_ERRORS as exc:
        raise DataError(f"not a readable parquet file (truncated or corrupt?): {exc}",
                        file=str(path), row=offset) from exc
    if offset != start + rows:
        raise DataError(f"row group {row_group} should hold {rows} rows but {offset - start} "
                        "could be read (truncated or corrupt?)", file=str(path), row=offset)


def check_columns(schema: Schema, pf: pq.ParquetFile, file: str, *, labels: bool = True
                  ) -> list[str]:
    """The file's columns the schema does not name (they are not read); raise on missing
    columns, on those unnamed ones under `strict_columns`, and on column types the schema
    cannot read (naming the first row holding a value of the wrong type). Without `labels`
    only the columns of `read_columns(schema, labels=False)` are required and checked."""
    return _check_arrow_columns(schema, pf.schema_arrow, lambda c: _first_value(pf, c), file,
                                labels=labels)


def check_table(schema: Schema, table: pa.Table, file: str, *, labels: bool = True
                ) -> list[str]:
    """`check_columns` for rows held in memory (`file`: the name errors give them)."""

    def first_value(column: str) -> tuple[int | None, object]:
        values = chunk_column(table, column)
        valid = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))
        return (int(valid[0]), values[int(valid[0])].as_py()) if len(valid) else (None, None)

    return _check_arrow_columns(schema, table.schema, first_value, file, labels=labels)


def _check_arrow_columns(schema: Schema, arrow_schema: pa.Schema,
                         first_value: Callable[[str], tuple[int | None, object]], file: str, *,
                         labels: bool) -> list[str]:
    """`check_columns` on the columns of `arrow_schema`; `first_value(column)`: (row, value)
    of the column's first non-null value, (None, None) if all are null."""
    twice = sorted(c for c, n in Counter(arrow_schema.names).items() if n > 1)
    if twice:
        raise DataError(f"columns {twice} appear more than once; give every column its own "
                        "name", file=file, column=twice[0])
    present = set(arrow_schema.names)
    wanted = read_columns(schema, labels=labels)
    expected = set(schema.columns)
    missing = [c for c in wanted if c not in present]
    if missing:
        unnamed = [c for c in arrow_schema.names if c not in expected]
        raise DataError(f"missing columns {missing}{_did_you_mean(missing, unnamed)}", file=file,
                        column=missing[0])
    known = {*expected, *schema.ignore_columns, *schema.truth_columns,
             *schema.known_at_columns, schema.click_time}
    extra = [c for c in arrow_schema.names if c not in known]
    if extra and schema.strict_columns:
        raise DataError(f"unexpected columns {extra}; declare them in the schema, list them "
                        "under ignore_columns, or drop strict_columns", file=file,
                        column=extra[0])

    def is_id(t: pa.DataType) -> bool:
        if pa.types.is_dictionary(t):
            t = t.value_type
        return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)

    def is_number(t: pa.DataType) -> bool:
        return pa.types.is_integer(t) or pa.types.is_floating(t)

    def list_of(t: pa.DataType, ok) -> bool:
        return (pa.types.is_list(t) or pa.types.is_large_list(t)
                or pa.types.is_fixed_size_list(t)) and ok(t.value_type)

    checks = [(c, is_id, "an integer or string id") for c in schema.vocab_columns
              if c not in schema.bag_names]
    checks += [(s.name, lambda t: list_of(t, is_id), "a list of integer or string ids")
               for s in schema.id_sequences]
    # A list of nulls is what a JSON request whose bags are all empty becomes.
    checks += [(b, lambda t: list_of(t, lambda v: is_id(v) or pa.types.is_null(v)),
                "a list of integer or string ids (a bag)") for b in schema.bag_names]
    checks += [(s.name, lambda t: list_of(t, is_number), "a list of numbers")
               for s in schema.float_sequences]
    checks += [(f.name, is_number, "a number") for f in schema.numeric]
    checks += [(c, pa.types.is_integer, "an integer (a sequence's number of items)")
               for c in schema.length_columns]
    checks += [(c, is_number, "a number (attribution weight)")
               for c in (*schema.labels, *schema.true_labels)]
    checks += [(c, is_number, "0 or 1 (is the action reported)") for c in schema.reported_labels]
    if schema.click_column:
        checks.append((schema.click_column, is_number, "0 or 1 (was the impression clicked)"))
    if schema.campaign_column:
        checks.append((schema.campaign_column, is_id, "an integer or string id"))
    if schema.target_action_column:
        checks.append((schema.target_action_column, is_id, "a label index or label name"))
    checks = [check for check in checks if check[0] in wanted]
    for column, ok, what in checks:
        dtype = arrow_schema.field(column).type
        if not ok(dtype):
            row, value = first_value(column)
            shown = "" if row is None else f" (first value {value!r})"
            raise DataError(f"wrong dtype {dtype}, expected {what}{shown}", file=file,
                            column=column, row=row)
    return extra


def _did_you_mean(missing: list[str], candidates: list[str]) -> str:
    """' (did you mean ...?)' naming the closest of `candidates` to each `missing` column that
    has one (the file's columns the schema does not name), or ''."""
    closest = {c: difflib.get_close_matches(c, candidates) for c in missing}
    found = [(c, match[0]) for c, match in closest.items() if match]
    if not found:
        return ""
    if len(missing) == 1:
        return f" (did you mean '{found[0][1]}'?)"
    return " (did you mean " + ", ".join(f"'{m}' for '{c}'" for c, m in found) + "?)"


def _first_value(pf: pq.ParquetFile, column: str) -> tuple[int | None, object]:
    """(row, value) of the first non-null value of `column`; (None, None) if all are null."""
    start = 0
    for index in range(pf.metadata.num_row_groups):
        values = pf.read_row_group(index, columns=[column]).column(column).combine_chunks()
        valid = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))
        if len(valid):
            return start + int(valid[0]), values[int(valid[0])].as_py()
        start += len(values)
    return None, None


class DayConverter:
    """Converts chunks of day files of one schema, holding the vocab lookups they share.

    Without `labels` only the features and the target action are read and converted (scoring
    data that has no labels). Safe to use from several threads at once (scratch space is per
    thread).
    """

    def __init__(self, schema: Schema, lookups: dict[str, VocabLookup | HashLookup], *,
                 labels: bool = True):
        self.schema = schema
        self.lookups = lookups
        self.labels = labels
        self._pad_rows = vocab_info(schema, lookups).sequence_pad
        # Padding is expected, not an unknown id: when the pad id has no row of its own it is
        # left out of the OOV count.
        self._pad_is_oov = {} if schema.ragged_sequences else {
            s.shares: self._pad_rows[s.name] == lookups[s.shares].oov_index
            for s in schema.id_sequences}
        self._local = threading.local()

    @property
    def columns(self) -> list[str]:
        """The columns a chunk must hold."""
        return list(read_columns(self.schema, labels=self.labels))

    def convert(self, chunk: RowGroup | pa.RecordBatch | pa.Table, offset: int, file: str,
                out: dict[str, np.ndarray], pool: Executor | None = None) -> ChunkStats:
        """Validate `chunk` (rows `offset`.. of `file`) and write it into `out`, a dict of
        contiguous arrays of `chunk.num_rows` rows shaped as in `array_shapes`.

        With `pool`, the columns are decoded and converted by its threads, several at a time
        (each writes its own slots of `out`); the arrays, the statistics and the error raised
        (the first in column order) are those of a conversion without it."""
        tasks = self._tasks(chunk, offset, file, out)
        if pool is None:
            parts = [task() for task in tasks]
        else:
            futures = [pool.submit(task) for task in tasks]
            # Every task ends before anything is raised, so none writes into `out` afterwards.
            wait(futures)
            parts = [future.result() for future in futures]
        stats = ChunkStats(positives={}, oov={})
        for part in parts:
            stats.add(part)
        return stats

    def _tasks(self, chunk: RowGroup | pa.RecordBatch | pa.Table, offset: int, file: str,
               out: dict[str, np.ndarray]) -> list[Callable[[], ChunkStats]]:
        """The conversion of `chunk` as independent steps, in column order: each reads its
        columns, writes its own slots of `out` and returns its part of the statistics."""
        s, n = self.schema, chunk.num_rows

        def col(name: str) -> pa.Array:
            return chunk_column(chunk, name)

        def fields() -> ChunkStats:
            stats = ChunkStats(positives={}, oov={})
            ids = self._scratch("ids", (n,), np.int32)
            users = self.lookups[s.user_column]
            stats.oov[s.user_column] = users.map_into(col(s.user_column), ids)
            out["user"][:] = user_groups(col(s.user_column), ids, users.oov_index)
            sparse = out["sparse"]
            for j, f in enumerate(s.fields):
                values = col(f.name)
                stats.oov[f.name] = self.lookups[f.name].map_into(values, ids)
                sparse[:, j] = ids
                if f.name in self._pad_is_oov:
                    _no_pad_ids(values, s.sequence_pad, f.name, file, offset)
            for shared in self._pad_is_oov:
                if shared not in s.field_names:
                    _no_pad_ids(col(shared), s.sequence_pad, shared, file, offset)
            return stats

        def id_sequence(j: int, spec: IdSequence) -> ChunkStats:
            flat = _fixed_length_values(col(spec.name), spec.length, spec.name, file, offset)
            rows = self._scratch("seq", (n, spec.length), np.int32)
            oov = self.lookups[spec.shares].map_into(flat, rows)
            if self._pad_is_oov[spec.shares]:
                oov -= _count_token(flat, s.sequence_pad)
            out["seq"][:, j, :spec.length] = rows
            out["seq"][:, j, spec.length:] = self._pad_rows[spec.name]
            return ChunkStats(positives={}, oov={spec.name: oov})

        def float_sequence(j: int, spec) -> ChunkStats:
            flat = _fixed_length_values(col(spec.name), spec.length, spec.name, file, offset)
            values = _floats(flat, spec.name, file, offset, per_row=spec.length,
                             limit=MAX_MAGNITUDE)
            out["dense_seq"][:, j, :] = values.reshape(n, spec.length)
            return ChunkStats(positives={}, oov={})

        def ragged() -> ChunkStats:
            stats = ChunkStats(positives={}, oov={})
            self._ragged_sequences(col, file, offset, out, stats)
            return stats

        def bag(j: int) -> ChunkStats:
            spec = s.bags[j]
            lengths, oov, truncated = padded_bag(col(spec.name), self.lookups[spec.name],
                                                 spec.max_length, out["bags"][:, j, :],
                                                 spec.name, file, offset)
            out["bag_lengths"][:, j] = lengths
            return ChunkStats(positives={}, oov={spec.name: oov},
                              truncated={spec.name: truncated})

        def numeric() -> ChunkStats:
            stats = ChunkStats(positives={}, oov={})
            for j, f in enumerate(s.numeric):
                values = _numbers(col(f.name), f.name, file, offset, s.numeric_fill)
                if f.transform == "log1p" and values.size and values.min() <= -1:
                    row = offset + int(np.flatnonzero(values <= -1)[0])
                    raise DataError(f"log1p needs values above -1, got {values.min()!r}",
                                    file=file, column=f.name, row=row)
                out["numeric"][:, j] = values
                if f.transform == "standardise":
                    stats.numeric[f.name] = Moments.of(values)
            if s.target_action_column:
                out["target_action"][:] = self._target_action(col(s.target_action_column),
                                                              file, offset)
            return stats

        def labels() -> ChunkStats:
            return self._labels(col, file, offset, out)

        tasks: list[Callable[[], ChunkStats]] = [fields]
        if s.ragged_sequences and (s.id_sequences or s.float_sequences):
            tasks.append(ragged)
        if not s.ragged_sequences:
            tasks += [partial(id_sequence, j, spec) for j, spec in enumerate(s.id_sequences)]
            tasks += [partial(float_sequence, j, spec)
                      for j, spec in enumerate(s.float_sequences)]
        tasks += [partial(bag, j) for j in range(len(s.bags))]
        tasks.append(numeric)
        if self.labels:
            tasks.append(labels)
        return tasks

    def _labels(self, col: Callable[[str], pa.Array], file: str, offset: int,
                out: dict[str, np.ndarray]) -> ChunkStats:
        """The labels and what is read with them (known-at and click times, campaigns,
        clicks) into `out`; their statistics."""
        s = self.schema
        stats = ChunkStats(positives={}, oov={})
        weights = out["weights"]
        for j, c in enumerate(s.labels):
            # Counted on the contiguous column, before it is spread into its strided slot.
            column, top = _label_weights(col(c), c, file, offset)
            weights[:, j] = column
            stats.positives[c] = int(np.count_nonzero(column > 0))
            if top > 1:
                above = np.flatnonzero(column > 1)
                if above.size:
                    stats.above_one[c] = (above.size, offset + int(above[0]))
        stats.same_binary = same_binary_pairs(weights, s.labels)
        if "known_at" in out:
            for j, (label, c) in enumerate(zip(s.labels, s.known_at_columns, strict=True)):
                out["known_at"][:, j] = known_at_times(col(c), weights[:, j], label, c, file,
                                                       offset)
        if "click_time" in out:
            out["click_time"][:] = click_times(col(s.click_time), s.click_time, file, offset)
            if "known_at" in out:
                check_known_after_click(out["known_at"], out["click_time"], s, file, offset)
        for j, c in enumerate(s.true_labels):
            out["true_weights"][:, j] = _label_weights(col(c), c, file, offset)[0]
        for j, c in enumerate(s.reported_labels):
            out["reported"][:, j] = _label_weights(col(c), c, file, offset)[0] > 0
        if s.campaign_column:
            out["campaign"][:] = self._campaign(col(s.campaign_column), file, offset)
        if s.click_column:
            out["click"][:] = impression_clicks(col(s.click_column), weights, s, file, offset)
        return stats

    def oov_by_row(self, chunk: RowGroup | pa.RecordBatch | pa.Table,
                   out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The out-of-vocabulary ids of each row (int64 [N]) in every column `convert` counts
        them in, read off the arrays `out` it wrote for `chunk`: summed over the rows, its
        `ChunkStats.oov`. (The counts of each of the requests a service converts together.)"""
        s, n = self.schema, chunk.num_rows

        def per_row(rows: np.ndarray, lookup: VocabLookup | HashLookup) -> np.ndarray:
            return (rows == lookup.oov_index).reshape(n, -1).sum(axis=1)

        # An unknown user's group lies past the OOV row (see `user_groups`).
        counts = {s.user_column: (out["user"] >= self.lookups[s.user_column].oov_index)
                  .astype(np.int64)}
        for j, f in enumerate(s.fields):
            counts[f.name] = per_row(out["sparse"][:, j], self.lookups[f.name])
        for j, spec in enumerate(s.id_sequences):
            # Ragged rows are padded past their items with a row no id maps to.
            counts[spec.name] = per_row(out["seq"][:, j, :spec.length],
                                        self.lookups[spec.shares])
            if not s.ragged_sequences and self._pad_is_oov[spec.shares]:
                hits = equal_to_token(chunk_column(chunk, spec.name).flatten(), s.sequence_pad)
                if hits is not None:
                    pads = pc.fill_null(hits, False).to_numpy(zero_copy_only=False)
                    counts[spec.name] -= pads.reshape(n, spec.length).sum(axis=1)
        for j, bag in enumerate(s.bags):
            rows = out["bags"][:, j, :]
            present = np.arange(rows.shape[1]) < out["bag_lengths"][:, j, None]
            counts[bag.name] = ((rows == self.lookups[bag.name].oov_index) & present).sum(axis=1)
        return counts

    def _ragged_sequences(self, col, file: str, offset: int, out: dict[str, np.ndarray],
                          stats: ChunkStats) -> None:
        """Cut and pad the sequences of rows holding any number of items into `out['seq']`
        and `out['dense_seq']`: ids padded with their table's padding row, floats with 0. Each
        id sequence holds its own number of items per row; a float sequence holds as many as
        the first sequence, with which it is position-aligned."""
        s = self.schema
        specs = (*s.id_sequences, *s.float_sequences)
        first, aligned = specs[0], None
        counted = first.length_column if isinstance(first, IdSequence) else None
        for spec in specs:
            if isinstance(spec, IdSequence) and spec.length_column:
                lengths = item_counts(col(spec.length_column), spec.length_column, file, offset)
                values = leading_items(col(spec.name), lengths, spec.name, spec.length_column,
                                       file, offset, blame=spec.length_column)
            elif isinstance(spec, FloatSequence) and counted:
                # Aligned with a counted first sequence: its first n_i values, the rest unread.
                values = leading_items(col(spec.name), aligned, spec.name, counted, file,
                                       offset, blame=spec.name)
                lengths = aligned
            else:
                values, lengths = list_values(col(spec.name), spec.name, file, offset)
            if spec is first:
                aligned = lengths
            elif isinstance(spec, FloatSequence) and \
                    (wrong := np.flatnonzero(lengths != aligned)).size:
                row = int(wrong[0])
                raise DataError(f"holds {int(lengths[row])} items where '{first.name}' holds "
                                f"{int(aligned[row])}: a float sequence is position-aligned "
                                f"with '{first.name}' and holds its number of items",
                                file=file, column=spec.name, row=offset + row)
            if isinstance(spec, IdSequence):
                lookup, pad = self.lookups[spec.shares], self._pad_rows[spec.name]
                slot = out["seq"][:, s.id_sequences.index(spec), :]
                slot[:, spec.length:] = pad
                target = slot[:, :spec.length]
                padded_rows(lookup.map(values), lengths, target, pad)
                # The padding row lies past the OOV row, so padding never counts as unknown.
                stats.oov[spec.name] = int(np.count_nonzero(target == lookup.oov_index))
                stats.truncated[spec.name] = int(np.count_nonzero(lengths > spec.length))
            else:
                target = out["dense_seq"][:, s.float_sequences.index(spec), :]
                numbers = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
                padded_rows(numbers, lengths, target, 0.0)  # nulls are NaN, refused below
                _checked_range(target.reshape(-1), spec.name, file, offset,
                               per_row=target.shape[1], limit=MAX_MAGNITUDE)
        if not s.id_sequences:
            stats.truncated[first.name] = int(np.count_nonzero(aligned > first.length))

    def _scratch(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A reusable per-thread buffer (fresh large allocations cost a page fault per page)."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        size = int(np.prod(shape))
        buf = buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = buffers[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

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
            names = pa.array([*labels, OTHER_TARGET], type=pa.string())
            found = pc.index_in(pc.cast(values, pa.string()), value_set=names)
            index = pc.fill_null(found, -2).to_numpy().astype(np.int64)
            index[index == len(labels)] = -1
        bad = np.flatnonzero((index < -1) | (index >= len(labels)))
        if bad.size:
            raise DataError(f"target action {values[int(bad[0])].as_py()!r} is not one of the "
                            f"labels {list(labels)} (or their index), nor -1 / "
                            f"'{OTHER_TARGET}'", file=file, column=column,
                            row=offset + int(bad[0]))
        return index


def _seconds(values: pa.Array) -> np.ndarray:
    """A column of unix seconds (numbers) or timestamps as float64 seconds [N], nulls NaN."""
    if pa.types.is_timestamp(values.type):
        per_second = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[values.type.unit]
        seconds = pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)
        return np.asarray(seconds, dtype=np.float64) / per_second
    return values.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN


def click_times(values: pa.Array, column: str, file: str, offset: int) -> np.ndarray:
    """The click times as float64 unix seconds [N]; raises naming the first row whose time is
    null, NaN or infinite."""
    times = _seconds(values)
    bad = ~np.isfinite(times)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"the click time is {float(times[row])}: every row needs the time of its "
                        "click", file=file, column=column, row=offset + row)
    return times


def check_known_after_click(known_at: np.ndarray, click_time: np.ndarray, schema: Schema,
                            file: str, offset: int) -> None:
    """Raise naming the first row whose credit became known [N, V] before its click [N]."""
    early = known_at < click_time[:, None]  # NaN compares False: a label of 0
    if early.any():
        row, j = (int(i[0]) for i in np.nonzero(early))
        raise DataError(f"the credit became known at {float(known_at[row, j])}, before the "
                        f"click at {float(click_time[row])}", file=file,
                        column=schema.known_at_columns[j], row=offset + row)


def impression_clicks(values: pa.Array, weights: np.ndarray, schema: Schema, file: str,
                      offset: int) -> np.ndarray:
    """The click column of impression logs as float32 0/1 [N]; raises naming the first row whose
    value is not 0 or 1, or that is unclicked but credited (weights [N, V] > 0)."""
    column = schema.click_column
    _no_nulls(values, column, file, offset)
    raw = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad = (raw != 0) & (raw != 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"click is {float(raw[row])!r}; an impression is clicked (1) or not (0)",
                        file=file, column=column, row=offset + row)
    credited = (raw == 0) & (weights > 0).any(axis=1)
    if credited.any():
        row = int(np.flatnonzero(credited)[0])
        label = schema.labels[int(np.flatnonzero(weights[row] > 0)[0])]
        raise DataError(f"the impression was not clicked but its label '{label}' is "
                        f"{float(weights[row, schema.labels.index(label)])}: a conversion "
                        "needs a click", file=file, column=column, row=offset + row)
    return raw.astype(np.float32)


def known_at_times(values: pa.Array, weights: np.ndarray, label: str, column: str, file: str,
                   offset: int) -> np.ndarray:
    """The known-at times of one label as float64 unix seconds [N]: finite where its weight
    [N] is positive, NaN where it is 0 (a null or NaN there); raises naming the first row that
    breaks this."""
    times = _seconds(values)
    positive = weights > 0
    unknown = positive & ~np.isfinite(times)
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise DataError(f"label '{label}' is positive but its known-at time is {times[row]!r}: "
                        "a credited row needs the time its credit became known", file=file,
                        column=column, row=offset + row)
    stray = ~positive & ~np.isnan(times)
    if stray.any():
        row = int(np.flatnonzero(stray)[0])
        raise DataError(f"label '{label}' is 0 but its known-at time is {times[row]!r}: a row "
                        "without credit has no known-at time (leave it null)", file=file,
                        column=column, row=offset + row)
    return times


def chunk_column(chunk: RowGroup | pa.Table | pa.RecordBatch, name: str) -> pa.Array:
    """One column of a chunk as a single array."""
    column = chunk.column(name)
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def equal_to_token(values: pa.Array, token: str) -> pa.Array | None:
    """Which of `values` equal the raw id `token` (bool [N]); None when none can (an integer
    column and a token that is not an integer of its type)."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_integer(values.type):
        try:
            scalar = pa.scalar(int(token), type=values.type)
        except (ValueError, OverflowError, pa.ArrowInvalid):
            return None
        return pc.equal(values, scalar)
    return pc.equal(pc.cast(values, pa.string()), token)


def _count_token(values: pa.Array, token: str) -> int:
    """How many of `values` equal the raw id `token`."""
    hits = equal_to_token(values, token)
    return 0 if hits is None else int(pc.sum(hits).as_py() or 0)


def _no_pad_ids(values: pa.Array, pad: str, column: str, file: str, offset: int) -> None:
    """Raise when the field `column`, whose table id sequences share, holds the pad id."""
    hits = equal_to_token(values, pad)
    if hits is not None and pc.any(hits).as_py():
        row = offset + int(np.flatnonzero(hits.to_numpy(zero_copy_only=False))[0])
        raise DataError(f"the schema's sequence_pad '{pad}' is a real id of this field, whose "
                        "table the id sequences share: padding would hide it; declare another "
                        "sequence_pad", file=file, column=column, row=row)


def _no_nulls(values: pa.Array, column: str, file: str, offset: int) -> None:
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError("null value", file=file, column=column, row=offset + row)


def _fixed_length_values(lists: pa.Array, length: int, column: str, file: str,
                         offset: int) -> pa.Array:
    """The flattened values of a list column whose every row holds exactly `length` items."""
    _no_nulls(lists, column, file, offset)
    if not pa.types.is_fixed_size_list(lists.type):
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(lengths != length)
        if wrong.size:
            row = int(wrong[0])
            raise DataError(f"sequence has length {int(lengths[row])}, the schema says {length}",
                            file=file, column=column, row=offset + row)
    elif lists.type.list_size != length:
        raise DataError(f"sequences have length {lists.type.list_size}, the schema says "
                        f"{length}", file=file, column=column, row=offset)
    return lists.flatten()


def list_values(lists: pa.Array, column: str, file: str, offset: int
                ) -> tuple[pa.Array, np.ndarray]:
    """(the items of every row, one after another; items per row int64 [N]) of a list
    column; a null row is an error. A list of nulls only comes back as int64 nulls."""
    _no_nulls(lists, column, file, offset)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    values = lists.flatten()
    return (values.cast(pa.int64()) if pa.types.is_null(values.type) else values), lengths


def item_counts(counts: pa.Array, column: str, file: str, offset: int) -> np.ndarray:
    """The rows' numbers of valid items, int64 [N], of the integer length column `column`;
    raises naming the first row whose number is null or negative."""
    _no_nulls(counts, column, file, offset)
    n = counts.to_numpy(zero_copy_only=False).astype(np.int64)
    negative = np.flatnonzero(n < 0)
    if negative.size:
        row = int(negative[0])
        raise DataError(f"length {int(n[row])}: a row holds 0 items or more", file=file,
                        column=column, row=offset + row)
    return n


def leading_items(lists: pa.Array, n: np.ndarray, column: str, counted_by: str, file: str,
                  offset: int, *, blame: str) -> pa.Array:
    """The first n_i items of every row i of the list column `column` (`n` [N], read from
    `counted_by`), one row after another; what follows them is not read. Raises naming the
    column `blame` and the first row whose list holds fewer than n_i items."""
    values, lengths = list_values(lists, column, file, offset)
    short = np.flatnonzero(n > lengths)
    if short.size:
        row = int(short[0])
        raise DataError(f"'{counted_by}' counts {int(n[row])} items but the list of "
                        f"'{column}' holds {int(lengths[row])}", file=file, column=blame,
                        row=offset + row)
    # Item k of the kept ones, in row r, sits at its row's start plus k less the kept items
    # of the rows before r.
    starts, kept_starts = np.cumsum(lengths) - lengths, np.cumsum(n) - n
    positions = np.repeat(starts - kept_starts, n) + np.arange(int(n.sum()))
    return values.take(pa.array(positions))


def padded_rows(values: np.ndarray, lengths: np.ndarray, out: np.ndarray, fill,
                cap: int | None = None) -> np.ndarray:
    """Write each row's first `cap` (default W) items of `values` (the rows' items one after
    another, `lengths` [N] per row) into `out` [N, W], `fill` after them, without a loop over
    rows; returns the items kept per row, min(length, cap) [N]."""
    kept = np.minimum(lengths, out.shape[1] if cap is None else cap)
    starts = np.cumsum(lengths) - lengths
    positions = np.arange(out.shape[1])
    present = positions < kept[:, None]
    out[...] = fill
    out[present] = values[(starts[:, None] + positions)[present]]
    return kept


def padded_bag(lists: pa.Array, lookup: VocabLookup | HashLookup, cap: int, out: np.ndarray,
               column: str, file: str, offset: int) -> tuple[np.ndarray, int, int]:
    """Write the table rows of each row's first `cap` ids of the list column `lists` [N] into
    `out` [N, M] (M >= cap; positions past a row's ids hold row 0), vectorised over the
    lists' offsets. Returns (ids kept per row [N], OOV ids among them, rows truncated)."""
    values, lengths = list_values(lists, column, file, offset)
    kept = padded_rows(lookup.map(values), lengths, out, 0, cap)
    present = np.arange(out.shape[1]) < kept[:, None]
    oov = int(np.count_nonzero(out[present] == lookup.oov_index))
    return kept.astype(np.int32), oov, int(np.count_nonzero(lengths > cap))


def _numbers(values: pa.Array, column: str, file: str, offset: int, fill: float | None
             ) -> np.ndarray:
    """A numeric column's values [N]: nulls, NaN and inf become `fill`, or are an error
    naming the first one when `fill` is None; a value beyond `MAX_MAGNITUDE` is an error
    either way."""
    if fill is None:
        return _floats(values, column, file, offset, limit=MAX_MAGNITUDE,
                       fix=" (numeric_fill in the schema replaces such values)")
    out = values.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
    if _range(out, MAX_MAGNITUDE) is None:
        out = out.copy()
        out[~np.isfinite(out)] = fill
        _checked_range(out, column, file, offset, limit=MAX_MAGNITUDE)
    return out


def _floats(values: pa.Array, column: str, file: str, offset: int, *, per_row: int = 1,
            limit: float = np.inf, fix: str = "") -> np.ndarray:
    """`values` (numbers) as a numpy array; raises on the first null, NaN or infinite value
    (its message ending in `fix`) and on the first beyond +-`limit`."""
    out = _float_array(values, column, file, offset, per_row=per_row, fix=fix)
    _checked_range(out, column, file, offset, per_row=per_row, limit=limit, fix=fix)
    return out


def _float_array(values: pa.Array, column: str, file: str, offset: int, *, per_row: int = 1,
                 fix: str = "") -> np.ndarray:
    """`values` (numbers) as a numpy array; raises on the first null."""
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0]) // per_row
        raise DataError(f"null value{fix}", file=file, column=column, row=offset + row)
    return values.to_numpy(zero_copy_only=False)


def _range(out: np.ndarray, limit: float) -> tuple[float, float] | None:
    """(min, max) of `out` [N] when every value is finite and within +-`limit`, else None.
    Two passes find it: NaN propagates through min and max, inf is beyond any limit."""
    if not out.size:
        return math.inf, -math.inf
    low, high = float(out.min()), float(out.max())
    if math.isfinite(low) and math.isfinite(high) and -limit <= low and high <= limit:
        return low, high
    return None


def _checked_range(out: np.ndarray, column: str, file: str, offset: int, *, per_row: int = 1,
                   limit: float = np.inf, fix: str = "") -> tuple[float, float]:
    """(min, max) of `out` [N]; raises naming the first NaN, infinite or too large value."""
    found = _range(out, limit)
    if found is not None:
        return found
    first = int(np.flatnonzero(~np.isfinite(out) | (np.abs(out) > limit))[0])
    value, row = float(out[first]), offset + first // per_row
    if not math.isfinite(value):
        what = "NaN" if math.isnan(value) else "infinite"
        raise DataError(f"{what} value{fix}", file=file, column=column, row=row)
    raise DataError(f"value {value:g} is beyond +-{limit:g}, the largest magnitude malt reads "
                    "(float32 overflows on it or on its square); correct it in the day file",
                    file=file, column=column, row=row)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _label_weights(values: pa.Array, column: str, file: str, offset: int
                   ) -> tuple[np.ndarray, float]:
    """Attribution weights as float32 [N] and the largest of them; raises on null, NaN,
    infinite or negative weights and on weights that float32 cannot hold (a positive weight
    must stay positive)."""
    raw = _float_array(values, column, file, offset)
    low, high = _checked_range(raw, column, file, offset)
    if low < 0:
        row = int(np.flatnonzero(raw < 0)[0])
        raise DataError(f"negative attribution weight {raw[row]}", file=file, column=column,
                        row=offset + row)
    if raw.dtype == np.float32:
        return raw, high
    if high <= _FLOAT32_MAX:
        out = raw.astype(np.float32)
        lost = (out == 0) != (raw == 0)
        if not lost.any():
            return out, high
    else:
        lost = raw > _FLOAT32_MAX
    row = int(np.flatnonzero(lost)[0])
    raise DataError(f"attribution weight {raw[row]} is outside the float32 range", file=file,
                    column=column, row=offset + row)
