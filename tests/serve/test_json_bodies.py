"""JSON request bodies read by Arrow's JSON reader (from `ARROW_JSON_BYTES` on) give the table
`json` reads, or are left to `json`, which refuses them naming the field: a client cannot tell
which reader read its body."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from malt.data.schema import MAC
from malt.serve import requests
from malt.serve.requests import RequestError, parse_request

COLUMNS = (MAC.user_column, MAC.fields[0].name, MAC.id_sequences[0].name,
           MAC.float_sequences[0].name)
SCALARS = (st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1)
           | st.integers(-2 ** 70, 2 ** 70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3)
           | st.sampled_from(["2026-12-07", "2026-12-07T10:00:00"]))
"""Integers within int64 and beyond it, where Arrow reads a float that json keeps exact
(uint64) or refuses."""
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["a", "b"]), inner, max_size=2), max_leaves=8)
KINDS = (st.integers(-2 ** 63, 2 ** 63 - 1), st.text(max_size=3),
         st.lists(st.integers(0, 9), max_size=3), st.lists(st.floats(-1, 1), max_size=3))


@st.composite
def rows(draw) -> list[dict]:
    """Rows whose columns mostly hold values of one kind (as a client sends them), now and
    then a null, a missing column or any value."""
    kinds = {c: draw(st.sampled_from(KINDS)) for c in (*COLUMNS, "other")}
    return [{c: draw(st.one_of(*[kind] * 6, st.none(), VALUES))
             for c, kind in kinds.items() if draw(st.integers(0, 9))}
            for _ in range(draw(st.integers(0, 6)))]


def read(body: bytes, *, threshold: int) -> tuple[str, object]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests, "ARROW_JSON_BYTES", threshold)
        try:
            parsed = parse_request(body, COLUMNS, max_rows=5)
        except RequestError as exc:
            return "refused", (exc.status, exc.field)
    return "read", (parsed.table.to_pylist(), parsed.table.schema, parsed.calibrated)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.one_of(rows(), rows(), rows(), VALUES), extra=st.one_of(
    st.just({}), st.fixed_dictionaries({"calibrated": st.booleans()}),
    st.fixed_dictionaries({}, optional={"calibrated": VALUES, "x": VALUES})))
def test_arrow_and_json_read_a_body_alike(rows, extra):
    body = json.dumps({"rows": rows, **extra}).encode()
    by_arrow, by_json = read(body, threshold=0), read(body, threshold=1 << 30)
    assert by_arrow == by_json


def test_a_large_body_is_read_by_arrow(test_rows, monkeypatch):
    body = json.dumps({"rows": test_rows[:20], "calibrated": False}).encode()
    assert len(body) >= requests.ARROW_JSON_BYTES
    monkeypatch.setattr(requests.json, "loads", None)  # json is not asked
    parsed = parse_request(body, COLUMNS, max_rows=20)
    assert parsed.rows == 20 and not parsed.calibrated
    assert parsed.table.column(MAC.user_column).to_pylist() == \
        [row[MAC.user_column] for row in test_rows[:20]]


@pytest.mark.parametrize("threshold", [0, 1 << 30], ids=["arrow", "json"])
@pytest.mark.parametrize("column, value", [(MAC.user_column, 2 ** 63 + 5),
                                           (COLUMNS[2], [3, 2 ** 64 + 1])])
def test_an_id_beyond_int64_is_refused_by_either_reader(threshold, column, value):
    """Not rounded to a float, which would score the row with another id."""
    body = {"rows": [{MAC.user_column: 7, column: value}, {MAC.user_column: 7}]}
    assert read(json.dumps(body).encode(), threshold=threshold) == ("refused", (422, column))
