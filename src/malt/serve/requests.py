"""A scoring request's JSON body read into an Arrow table whose columns are those a day file
would hold, so that the rows are checked and converted exactly as `malt predict` reads a file.

Body: `{"rows": [{"<column>": value, ...}, ...], "calibrated": true}`. A row holds the columns
the run reads when it scores (`malt.data.reader.read_columns` without labels): raw ids
(integers or strings), numbers, and sequences as lists. `calibrated` (default true) asks for the
run's calibrated probabilities; false, the model's own.

Or an Arrow IPC stream (content type `application/vnd.apache.arrow.stream`) of a table with
those columns, `?calibrated=false` in the query: the columns of a day file as they are, without
a JSON detour (many candidates a request).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The content type of a request body holding an Arrow IPC stream."""
ARROW_JSON_BYTES = 4096
"""JSON bodies from this size on (a few rows of a MAC-like schema) are read by Arrow's JSON
reader, in one pass without a Python object per value (at 200 rows about half the CPU time,
BENCHMARKS.md); smaller ones by `json`, which costs less to start."""
EXACT_FLOAT_INTEGERS = 2 ** 53
"""Floats hold every integer below this magnitude exactly."""


class RequestError(Exception):
    """A request the service refuses: the HTTP status, the field at fault (a body key, or
    `rows[i].<column>`), and why."""

    def __init__(self, status: int, field: str | None, message: str):
        self.status, self.field, self.message = status, field, message
        super().__init__(f"{field}: {message}" if field else message)

    def to_dict(self) -> dict:
        return {"error": self.message, "field": self.field}


@dataclass(frozen=True)
class ScoringRequest:
    """The rows to score (one Arrow column per wanted column present in them) and whether to
    calibrate."""

    table: pa.Table
    calibrated: bool

    @property
    def rows(self) -> int:
        return self.table.num_rows


def parse_request(body: bytes, columns: tuple[str, ...], max_rows: int) -> ScoringRequest:
    """The request in `body`, its rows reduced to `columns` (the others are not read); raise
    `RequestError` on a body that is not a JSON object with 1 to `max_rows` rows of objects, on
    an unknown key, or on a column whose values have no common type."""
    if len(body) >= ARROW_JSON_BYTES:
        read = _read_with_arrow(body, columns, max_rows)
        if read is not None:
            return read
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, None, f"the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise RequestError(422, None, 'the body must be a JSON object {"rows": [...]}')
    unknown = sorted(set(payload) - {"rows", "calibrated"})
    if unknown:
        raise RequestError(422, unknown[0], "unknown key; expected 'rows' and 'calibrated'")
    calibrated = payload.get("calibrated", True)
    if not isinstance(calibrated, bool):
        raise RequestError(422, "calibrated", f"expected true or false, got {calibrated!r}")
    rows = payload.get("rows")
    if not isinstance(rows, list):
        raise RequestError(422, "rows", "missing or not a list of row objects")
    _check_rows(len(rows), max_rows)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(422, f"rows[{i}]", "expected an object of column: value")
    arrays = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        if all(v is None for v in values):
            continue  # a missing column: the reader's check names it, as for a file
        try:
            arrays[column] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise RequestError(422, column, f"values of mixed or unreadable types ({exc})"
                               ) from exc
    if not arrays:
        raise RequestError(422, columns[0], f"missing column; the rows need {list(columns)}")
    return ScoringRequest(pa.table(arrays), calibrated)


def _read_with_arrow(body: bytes, columns: tuple[str, ...], max_rows: int
                     ) -> ScoringRequest | None:
    """The request of a well-formed JSON `body` read by Arrow's JSON reader: the table
    `parse_request` reads with `json` (a test holds them equal). None for any body it would
    read otherwise or refuse, which `parse_request` then reads and refuses itself, naming
    the field."""
    try:
        read = pa_json.read_json(
            pa.BufferReader(body), read_options=pa_json.ReadOptions(
                use_threads=False, block_size=len(body) + 1),
            parse_options=pa_json.ParseOptions(newlines_in_values=True))
        # (pyarrow 26 builds some arrays of nested nulls with wrong lengths: not taken)
        read.validate(full=True)
    except (pa.ArrowException, OSError):
        return None
    if read.num_rows != 1 or "rows" not in read.column_names or \
            not set(read.column_names) <= {"rows", "calibrated"} or \
            not pa.types.is_list(read.schema.field("rows").type) or \
            not pa.types.is_struct(read.schema.field("rows").type.value_type):
        return None
    calibrated = read.column("calibrated")[0].as_py() if "calibrated" in read.column_names \
        else True
    rows = read.column("rows").combine_chunks()
    if rows.null_count or not isinstance(calibrated, bool):
        return None
    records = rows.flatten()
    # Arrow takes ISO 8601 strings for times; `json` keeps them strings, which ids may be.
    if records.null_count or not len(records) or any(
            _holds_time(f.type) for f in records.type):
        return None
    _check_rows(len(records), max_rows)
    present = {f.name: values for f, values in zip(records.type, records.flatten())}
    arrays = {c: present[c] for c in columns
              if c in present and present[c].null_count < len(records)}
    # Arrow reads an integer beyond int64 as a float, which rounds an id: `json` keeps it
    # exact (uint64) or refuses it.
    if any(_holds_large_float(a) for a in arrays.values()):
        return None
    return ScoringRequest(pa.table(arrays), calibrated) if arrays else None


def _holds_large_float(array: pa.Array) -> bool:
    """Whether `array`, its lists and structs searched, holds a float of magnitude
    `EXACT_FLOAT_INTEGERS` or more."""
    dtype = array.type
    if pa.types.is_floating(dtype):
        largest = pc.max(pc.abs(array)).as_py()
        return largest is not None and largest >= EXACT_FLOAT_INTEGERS
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _holds_large_float(array.flatten())
    if pa.types.is_struct(dtype):
        return any(_holds_large_float(array.field(i)) for i in range(dtype.num_fields))
    return False


def _holds_time(dtype: pa.DataType) -> bool:
    if pa.types.is_temporal(dtype):
        return True
    return any(_holds_time(dtype.field(i).type) for i in range(dtype.num_fields))


def parse_arrow_request(body: bytes, columns: tuple[str, ...], max_rows: int,
                        calibrated: str | None) -> ScoringRequest:
    """The request of an Arrow IPC stream `body`, its table reduced to `columns`, and the
    query's `calibrated` (`true`, `false` or None: true); raise `RequestError` on a body that
    is not such a stream, on no rows or more than `max_rows`."""
    try:
        table = pa.ipc.open_stream(body).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise RequestError(400, None, f"the body is not an Arrow IPC stream: {exc}") from exc
    if calibrated not in (None, "true", "false"):
        raise RequestError(422, "calibrated", f"expected true or false, got {calibrated!r}")
    _check_rows(table.num_rows, max_rows)
    present = [c for c in columns if c in table.column_names]
    if not present:
        raise RequestError(422, columns[0], f"missing column; the rows need {list(columns)}")
    return ScoringRequest(table.select(present), calibrated != "false")


def _check_rows(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise RequestError(422, "rows", "no rows to score")
    if rows > max_rows:
        raise RequestError(413, "rows", f"{rows:,} rows, more than the service's limit of "
                           f"{max_rows:,} per request: split the request")
