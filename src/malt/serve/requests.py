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

ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The content type of a request body holding an Arrow IPC stream."""


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
