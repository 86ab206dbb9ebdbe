"""The rows of the requests a batch gathers, converted as one table: each request gets the
arrays and OOV counts `malt predict` converts for its rows alone, and a malformed request is
refused alone, with its own row numbers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from malt.data.reader import DayConverter, RowGroup, array_shapes
from malt.data.schema import MAC
from malt.deploy.predict import table_source
from malt.runs.load import load_run
from malt.serve.convert import RequestConverter
from malt.serve.requests import RequestError


def converted_alone(converter: DayConverter, table: pa.Table) -> tuple[dict, dict]:
    """The arrays and OOV counts of `table` written as a parquet file and read back as one row
    group, as `malt predict` converts a file's."""
    source = table_source(table)
    assert source.file.metadata.num_row_groups == 1
    arrays = {name: np.empty(shape, dtype) for name, (shape, dtype)
              in array_shapes(converter.schema, table.num_rows, labels=False).items()}
    stats = converter.convert(RowGroup(source.file, source.path, 0, 0), 0, "alone", arrays)
    return arrays, stats.oov


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6))
def test_requests_converted_together_get_what_each_gets_alone(sizes, run, test_rows):
    trained = load_run(run)
    converter = RequestConverter(trained.schema, trained.lookups)
    alone = DayConverter(trained.schema, trained.lookups, labels=False)
    bounds = np.cumsum([0, *sizes]) % len(test_rows)
    tables = [pa.Table.from_pylist(test_rows[lo:lo + n]).select(list(converter.columns))
              for lo, n in zip(bounds, sizes)]
    together = converter.convert(tables)
    for table, got in zip(tables, together):
        arrays, oov = converted_alone(alone, table)
        assert got.rows == table.num_rows
        assert got.oov == oov
        assert got.arrays.keys() == arrays.keys()
        for name, values in arrays.items():
            np.testing.assert_array_equal(got.arrays[name], values)


def test_a_request_that_breaks_the_schema_is_refused_alone(run, test_rows):
    trained = load_run(run)
    converter = RequestConverter(trained.schema, trained.lookups)
    field, sequence = MAC.fields[1].name, MAC.id_sequences[0].name
    short = [dict(row) for row in test_rows[:4]]
    short[3][sequence] = short[3][sequence][:-1]
    tables = [pa.Table.from_pylist(rows).select(list(converter.columns))
              for rows in (test_rows[:5], short, test_rows[5:8])]
    good = converter.convert([tables[0], tables[2]])
    first, refused, last = converter.convert(tables)
    assert isinstance(refused, RequestError) and refused.status == 422
    assert refused.field == sequence
    assert refused.message.startswith(f"column '{sequence}', row 3:")  # its own row
    for got, expected in ((first, good[0]), (last, good[1])):
        assert got.oov == expected.oov
        for name, values in expected.arrays.items():
            np.testing.assert_array_equal(got.arrays[name], values)
    # a column of another type makes a table of its own schema, checked on its own
    typed = pa.Table.from_pylist([dict(row, **{field: str(row[field])})
                                  for row in test_rows[:3]]).select(list(converter.columns))
    assert all(not isinstance(r, Exception) for r in converter.convert([tables[0], typed]))


def test_a_fault_met_converting_one_request_fails_it_alone(run, test_rows, monkeypatch):
    trained = load_run(run)
    converter = RequestConverter(trained.schema, trained.lookups)
    convert = converter.converter.convert
    cursed = test_rows[3][MAC.user_column]

    def faulty(chunk, *args):
        if cursed in chunk.column(MAC.user_column).to_pylist():
            raise RuntimeError("a fault of the service")
        return convert(chunk, *args)

    monkeypatch.setattr(converter.converter, "convert", faulty)
    tables = [pa.Table.from_pylist(test_rows[lo:hi]).select(list(converter.columns))
              for lo, hi in ((0, 3), (3, 5), (5, 9))]
    first, failed, last = converter.convert(tables)
    assert isinstance(failed, RuntimeError)
    assert (first.rows, last.rows) == (3, 4)
