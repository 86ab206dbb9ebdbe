"""The click-time column: checked and cached by `prepare`, turned into elapsed times and delays
as of T by the batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from malt.data import MAC, prepare
from malt.data.batches import DayBatches, delay_times
from malt.data.layout import day_path, write_day
from malt.errors import DataError
from support.mac_data import T0, add_click_time, add_known_at, write_random_dataset

DAY = 86400.0


@pytest.fixture
def clicked(tmp_path):
    root = write_random_dataset(tmp_path / "d", rows=120, days=3)
    add_known_at(root)
    add_click_time(root)
    return root


def rewrite(root, edit):
    path = day_path(root, "train", 1)
    write_day(path, edit(pq.read_table(path)))
    return path


def with_click_times(table, column):
    return table.set_column(table.schema.get_field_index("click_time"), "click_time", column)


def test_delay_times_by_hand():
    nan = np.nan
    click = np.array([100.0, 100.0, 500.0])
    known_at = np.array([[150.0, nan], [400.0, 300.0], [nan, nan]])
    elapsed, delay = delay_times(click, known_at, as_of=300.0)
    np.testing.assert_array_equal(elapsed, [200.0, 200.0, 0.0])   # a click after T waits 0
    # 400 > T: that credit is still to come, so no delay is observed for it; one known at T
    # exactly is known, as `labels_as_of` counts it.
    np.testing.assert_array_equal(delay, [[50.0, 0.0], [0.0, 200.0], [0.0, 0.0]])
    assert elapsed.dtype == delay.dtype == np.float32


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_as_of_carry_the_elapsed_time_and_known_delays(clicked, shuffle):
    day = prepare(clicked, MAC).train[0]
    arrays = day.arrays()
    assert day.stats.click_time and arrays["click_time"].dtype == np.float64
    table = pq.read_table(day_path(clicked, "train", 0))
    click = table["click_time"].to_numpy()
    np.testing.assert_array_equal(arrays["click_time"], click)
    as_of = T0 + 2 * DAY
    elapsed = np.zeros(day.rows, np.float32)
    delay = np.zeros((day.rows, len(MAC.labels)), np.float32)
    labels = np.zeros_like(delay)
    for batch in DayBatches(day, 32, shuffle=shuffle, seed=5, as_of=as_of):
        assert "click_time" not in batch and "known_at" not in batch
        rows = batch["index"].numpy()
        elapsed[rows] = batch["elapsed"].numpy()
        delay[rows] = batch["delay"].numpy()
        labels[rows] = batch["labels"].numpy()
    np.testing.assert_allclose(elapsed, as_of - click, rtol=1e-6)
    for j, column in enumerate(MAC.known_at_columns):
        known = table[column].to_numpy(zero_copy_only=False)
        seen = known <= as_of
        np.testing.assert_array_equal(labels[:, j] > 0, seen)
        np.testing.assert_allclose(delay[seen, j], (known - click)[seen], rtol=1e-6)
        # A credit that comes after T is an unlabelled row: no delay, only its elapsed time.
        assert np.all(delay[~seen, j] == 0)
        assert (~seen & (table[MAC.labels[j]].to_numpy() > 0)).any()


def test_without_as_of_or_click_time_no_delay_enters_a_batch(clicked, tmp_path):
    day = prepare(clicked, MAC).train[0]
    batch = next(iter(DayBatches(day, 32)))
    assert "elapsed" not in batch and "click_time" not in batch
    root = write_random_dataset(tmp_path / "plain", rows=50)
    add_known_at(root)
    plain = prepare(root, MAC).train[0]
    assert not plain.stats.click_time and "click_time" not in plain.arrays()
    assert "elapsed" not in next(iter(DayBatches(plain, 16, as_of=T0)))


def test_timestamps_read_as_unix_seconds(clicked):
    before = pq.read_table(day_path(clicked, "train", 1))["click_time"].to_numpy()
    stamps = pa.array((before * 1e6).astype("int64")).cast(pa.timestamp("us"))
    rewrite(clicked, lambda t: with_click_times(t, stamps))
    cached = prepare(clicked, MAC).train[1].arrays()["click_time"]
    np.testing.assert_allclose(cached, before, rtol=0, atol=1e-6)


def test_a_missing_click_time_names_the_row(clicked):
    def missing(table):
        times = table["click_time"].to_pylist()
        times[7] = None
        return with_click_times(table, pa.array(times, pa.float64()))
    path = rewrite(clicked, missing)
    with pytest.raises(DataError, match="click time is nan") as info:
        prepare(clicked, MAC)
    message = str(info.value)
    assert str(path) in message and "click_time" in message and "7" in message


def test_a_click_time_of_the_wrong_type_is_refused(clicked):
    rewrite(clicked, lambda t: with_click_times(t, pa.array(["x"] * t.num_rows)))
    with pytest.raises(DataError, match="expected a click time"):
        prepare(clicked, MAC)


def test_a_credit_known_before_its_click_is_refused(clicked):
    def late(table):
        weight = table["last"].to_numpy()
        row = int(np.flatnonzero(weight > 0)[0])
        times = table["click_time"].to_numpy().copy()
        times[row] = T0 + 10 * DAY
        return with_click_times(table, pa.array(times))
    rewrite(clicked, late)
    with pytest.raises(DataError, match="before the click") as info:
        prepare(clicked, MAC)
    assert "last_known_at" in str(info.value)
