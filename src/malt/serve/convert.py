"""The rows of the requests gathered into one batch, checked and converted as `malt predict`
checks and converts a file's (`malt.data.reader`): the requests whose tables have one Arrow
schema are put together into one table, checked and converted in one pass over its columns,
straight from memory (no parquet detour: a request of one row costs about what one of 200
does).

Rows convert independently of each other, so a request's arrays are those it would get alone.
When a table breaks the run's schema the requests in it are converted one by one, so that the
request at fault alone is refused, with its own row numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from malt.data.reader import DayConverter, array_shapes, check_table, read_columns
from malt.data.schema import Schema
from malt.errors import DataError
from malt.serve.requests import RequestError

log = logging.getLogger(__name__)

REQUEST = "request"
"""The name a request's rows are read under, as a file's name would be."""


@dataclass(frozen=True)
class ConvertedRows:
    """One request's rows ready to score: arrays [N, ...] by serving input name, and the ids
    per column that were out of the vocabs."""

    arrays: dict[str, np.ndarray]
    oov: dict[str, int]

    @property
    def rows(self) -> int:
        return len(self.arrays["sparse"])


class RequestConverter:
    """Converts the raw rows of requests with a schema's vocab lookups (see the module
    docstring)."""

    def __init__(self, schema: Schema, lookups: dict):
        self.schema = schema
        self.converter = DayConverter(schema, lookups, labels=False)
        self.columns = read_columns(schema, labels=False)
        """The columns a request's rows hold."""

    def convert(self, tables: list[pa.Table]) -> list[ConvertedRows | Exception]:
        """Each table's rows converted, or the error that refuses them (a `RequestError`
        naming the column where they break the schema)."""
        groups: dict[pa.Schema, list[int]] = {}
        for i, table in enumerate(tables):
            groups.setdefault(table.schema.remove_metadata(), []).append(i)
        results: list[ConvertedRows | Exception | None] = [None] * len(tables)
        for members in groups.values():
            if len(members) > 1:
                try:
                    together = self._convert([tables[i] for i in members])
                except Exception:  # one of them is at fault (a fault of ours, too): found below
                    pass
                else:
                    for i, converted in zip(members, together):
                        results[i] = converted
                    continue
            for i in members:
                try:
                    results[i] = self._convert([tables[i]])[0]
                except DataError as exc:
                    # "file request, column 'x', row 3: ..." -> "column 'x', row 3: ..."
                    message = str(exc).removeprefix(f"file {REQUEST}").lstrip(",: ")
                    results[i] = RequestError(422, exc.column, message)
                except Exception as exc:  # a fault met converting this request: it alone fails
                    log.exception("converting a request of %d rows failed", tables[i].num_rows)
                    results[i] = exc
        return results

    def _convert(self, tables: list[pa.Table]) -> list[ConvertedRows]:
        """The tables (one Arrow schema) converted as one; raises `DataError`."""
        table = tables[0] if len(tables) == 1 else pa.concat_tables(
            [t.replace_schema_metadata(None) for t in tables])
        check_table(self.schema, table, REQUEST, labels=False)
        arrays = {name: np.empty(shape, dtype) for name, (shape, dtype) in
                  array_shapes(self.schema, table.num_rows, labels=False).items()}
        self.converter.convert(table, 0, REQUEST, arrays)
        oov = self.converter.oov_by_row(table, arrays)
        bounds = np.cumsum([0, *(t.num_rows for t in tables)])
        return [ConvertedRows({name: a[lo:hi] for name, a in arrays.items()},
                              {c: int(n[lo:hi].sum()) for c, n in oov.items()})
                for lo, hi in zip(bounds[:-1], bounds[1:])]
