"""Known-at columns and the as-of cut: the cut hides exactly the labels not yet known."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from malt.data import MAC, Schema, prepare
from malt.data.as_of import labels_as_of, parse_as_of
from malt.data.batches import DayBatches
from malt.data.layout import day_path, write_day
from malt.errors import ConfigError, DataError
from malt.runs.config import DataConfig
from support.mac_data import T0, add_click_time, add_known_at, write_random_dataset


@pytest.fixture
def timed(tmp_path):
    root = write_random_dataset(tmp_path / "d", rows=200, days=3)
    add_known_at(root)
    return root


def expected_weights(path, as_of: float) -> np.ndarray:
    """The reference cut, one label at a time from the day file."""
    table = pq.read_table(path)
    out = []
    for label, column in zip(MAC.labels, MAC.known_at_columns, strict=True):
        weight = table[label].to_numpy()
        known = table[column].to_pylist()
        out.append([w if t is not None and t <= as_of else 0.0 for w, t in zip(weight, known)])
    return np.asarray(out, dtype=np.float32).T


@pytest.mark.parametrize("as_of", [T0 - 1, T0 + 86400.0, T0 + 2.5 * 86400, T0 + 5 * 86400])
@pytest.mark.parametrize("shuffle", [False, True])
def test_the_cut_hides_exactly_the_labels_not_yet_known(timed, as_of, shuffle):
    day = prepare(timed, MAC).train[0]
    assert day.stats.known_at and day.arrays()["known_at"].dtype == np.float64
    want = expected_weights(day_path(timed, "train", 0), as_of)
    batches = DayBatches(day, 64, shuffle=shuffle, seed=3, as_of=as_of)
    seen = np.zeros_like(want)
    for batch in batches:
        assert "known_at" not in batch
        seen[batch["index"].numpy()] = batch["weights"].numpy()
        assert np.array_equal(batch["labels"].numpy(), (batch["weights"] > 0).numpy())
    np.testing.assert_array_equal(seen, want)
    matured = np.concatenate([b["weights"].numpy() for b in DayBatches(day, 64)])
    hidden = (matured > 0) & (want == 0)
    assert hidden.any() == (as_of < T0 + 4 * 86400)   # late times hide nothing


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (7, 3), elements=st.sampled_from([0.0, 0.25, 1.0])),
       arrays(np.float64, (7, 3), elements=st.floats(0, 100)),
       st.floats(-10, 110))
def test_labels_as_of_keeps_a_weight_exactly_when_its_credit_is_known(weights, times, as_of):
    known_at = np.where(weights > 0, times, np.nan)
    cut = labels_as_of(weights, known_at, as_of)
    for (i, j), w in np.ndenumerate(weights):
        assert cut[i, j] == (w if w > 0 and times[i, j] <= as_of else 0.0)
    # Monotone in time: a label known at T is known at every later time.
    assert np.all(labels_as_of(weights, known_at, as_of + 1.0) >= cut)


def test_days_without_known_at_columns_refuse_the_cut(tmp_path):
    root = write_random_dataset(tmp_path / "d", rows=50)
    day = prepare(root, MAC).train[0]
    assert not day.stats.known_at and "known_at" not in day.arrays()
    with pytest.raises(ConfigError, match="known-at columns"):
        DayBatches(day, 16, as_of=T0)
    assert len(list(DayBatches(day, 16))) == 4  # without a cut nothing is asked


def rewrite(root, edit):
    path = day_path(root, "train", 1)
    write_day(path, edit(pq.read_table(path)))
    return path


def test_a_positive_label_without_a_known_at_time_is_refused(timed):
    def unknown(table):
        positive = int(np.flatnonzero(table["first"].to_numpy() > 0)[0])
        times = table["first_known_at"].to_pylist()
        times[positive] = None
        return table.set_column(table.schema.get_field_index("first_known_at"),
                                "first_known_at", pa.array(times, pa.float64()))
    path = rewrite(timed, unknown)
    with pytest.raises(DataError, match="'first' is positive but its known-at") as info:
        prepare(timed, MAC)
    assert str(path) in str(info.value) and "first_known_at" in str(info.value)


def test_a_known_at_time_without_credit_is_refused(timed):
    def stray(table):
        zero = int(np.flatnonzero(table["last"].to_numpy() == 0)[0])
        times = table["last_known_at"].to_pylist()
        times[zero] = T0
        return table.set_column(table.schema.get_field_index("last_known_at"),
                                "last_known_at", pa.array(times, pa.float64()))
    rewrite(timed, stray)
    with pytest.raises(DataError, match="'last' is 0 but its known-at time"):
        prepare(timed, MAC)


def test_some_known_at_columns_but_not_all_are_refused(timed):
    rewrite(timed, lambda t: t.drop_columns(["mta_known_at"]))
    with pytest.raises(DataError, match=r"not \['mta_known_at'\]"):
        prepare(timed, MAC)


def test_timestamps_read_as_unix_seconds(timed):
    def as_timestamps(table):
        for c in MAC.known_at_columns:
            seconds = table[c].to_numpy(zero_copy_only=False)
            stamps = pa.array((np.nan_to_num(seconds) * 1e6).astype("int64"), pa.int64(),
                              mask=np.isnan(seconds)).cast(pa.timestamp("us"))
            table = table.set_column(table.schema.get_field_index(c), c, stamps)
        return table
    path = day_path(timed, "train", 1)
    before = pq.read_table(path)["last_known_at"].to_numpy(zero_copy_only=False)
    rewrite(timed, as_timestamps)
    cached = prepare(timed, MAC).train[1].arrays()["known_at"][:, 0]
    np.testing.assert_allclose(cached, before, rtol=0, atol=1e-6)


def test_a_schema_names_other_known_at_columns(tmp_path):
    schema = Schema.from_dict({"user_column": "u", "fields": {"ad": ["item"]},
                               "labels": ["buy", "cart"], "known_at": {"buy": "buy_time"}})
    assert schema.known_at_columns == ("buy_time", "cart_known_at")
    assert Schema.from_dict(schema.to_dict()) == schema
    assert schema.fingerprint() != Schema.from_dict(
        {"user_column": "u", "fields": {"ad": ["item"]}, "labels": ["buy", "cart"]}).fingerprint()
    with pytest.raises(ConfigError, match=r"known_at names \['sale'\], which are not labels"):
        Schema.from_dict({"user_column": "u", "fields": {"ad": ["item"]}, "labels": ["buy"],
                          "known_at": {"sale": "sale_time"}})
    with pytest.raises(ConfigError, match="declared twice"):
        Schema.from_dict({"user_column": "u", "fields": {"ad": ["item"]},
                          "labels": ["buy", "cart"], "known_at": {"buy": "cart"}})


def test_as_of_reads_seconds_and_iso_times():
    assert parse_as_of("1700000000") == T0
    assert parse_as_of("2023-11-14T22:13:20") == T0        # UTC unless an offset is given
    assert parse_as_of("2023-11-15T00:13:20+02:00") == T0
    assert DataConfig(as_of="2023-11-14T22:13:20").as_of_seconds == T0
    assert DataConfig().as_of_seconds is None
    with pytest.raises(ConfigError, match="data.as_of = 'yesterday'"):
        DataConfig(as_of="yesterday")
    with pytest.raises(ConfigError, match="finite"):
        parse_as_of("nan")


def test_prepare_reports_the_positives_known_at_a_time(timed, capsys):
    from malt.cli import main

    as_of = T0 + 2 * 86400
    assert main(["prepare", "--data", str(timed), "--as-of", str(as_of)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    dataset = prepare(timed, MAC)
    counts = []
    for label, column in zip(MAC.labels, MAC.known_at_columns, strict=True):
        known = total = 0
        for day in dataset.train:
            table = pq.read_table(day.source)
            times = table[column].to_numpy(zero_copy_only=False)
            total += int(np.count_nonzero(table[label].to_numpy() > 0))
            known += int(np.count_nonzero(times <= as_of))
        counts.append(f"{label} {known:,} of {total:,} positives")
        assert 0 < known < total
    assert line.startswith(f"known at {as_of:g} (training days): ")
    assert all(c in line for c in counts)
    assert main(["prepare", "--data", str(timed), "--as-of", "soon"]) == 3


def test_a_label_known_exactly_at_the_cut_counts_as_known(timed):
    from malt.data.as_of import known_positives

    days = prepare(timed, MAC).train
    times = np.concatenate([d.arrays()["known_at"][:, 0] for d in days])
    as_of = float(np.nanmin(times))  # the first positive of `last` becomes known right then
    known, total = known_positives(days, as_of)
    assert known[0] == np.count_nonzero(times <= as_of) >= 1 and total[0] > known[0]


def test_the_refusals_name_the_days_and_what_writes_the_columns(tmp_path, timed):
    import re

    from malt.data.as_of import check_days_delay_correction, known_positives

    days = prepare(write_random_dataset(tmp_path / "plain", rows=50, days=2), MAC).train
    names = [day.name for day in days]
    where = (f"the labels' known-at columns (<label>_known_at, or the schema's known_at), "
             f"which the days {names} do not hold; `malt simulate` and `malt attribute` "
             "write them")
    with pytest.raises(ConfigError, match=f"^{re.escape('--as-of needs ' + where)}$"):
        known_positives(days, T0)
    with pytest.raises(ConfigError, match="^" + re.escape(
            f"task.delay_correction = 'fnw' needs {where}") + "$"):
        check_days_delay_correction(days, "fnw")
    check_days_delay_correction(days, "none")  # no correction asks for nothing
    check_days_delay_correction(prepare(timed, MAC).train, "fnc")
    with pytest.raises(ConfigError, match=re.escape(
            "--as-of = 'soon': expected unix seconds or an ISO-8601 date-time such as "
            "2026-12-07T06:00") + "$"):
        parse_as_of("soon")


def test_dfm_needs_an_as_of_time_and_click_times(tmp_path, timed):
    import re

    from malt.data.as_of import check_days_delay_correction

    days = prepare(timed, MAC).train
    with pytest.raises(ConfigError, match="^" + re.escape(
            "task.delay_correction = 'dfm' fits each row's elapsed time at the as-of time: "
            "give data.as_of (--as-of T)") + "$"):
        check_days_delay_correction(days, "dfm")
    names = [day.name for day in days]
    with pytest.raises(ConfigError, match="^" + re.escape(
            "task.delay_correction = 'dfm' needs the click times (the column the schema's "
            f"click_time names, `click_time` by default), which the days {names} do not hold; "
            "`malt simulate` writes them") + "$"):
        check_days_delay_correction(days, "dfm", T0)
    check_days_delay_correction(days, "fnw", T0)  # the stream corrections need no click time
    add_click_time(timed)
    check_days_delay_correction(prepare(timed, MAC).train, "dfm", T0)


def test_a_time_without_an_offset_is_utc_whatever_the_machine_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert parse_as_of("2023-11-14T22:13:20") == T0
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_cut_weights_are_float32():
    weights = np.ones((2, 1), np.float32)
    assert labels_as_of(weights, np.array([[1.0], [np.nan]]), 5.0).dtype == np.float32
