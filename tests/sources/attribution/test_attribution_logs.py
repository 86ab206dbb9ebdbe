"""Raw-log readers: the generic two-table layout, the Criteo layout, and their error messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from malt.errors import DataError
from malt.sources.attribution.logs import read_criteo, read_generic


def write(frame: pd.DataFrame, path):
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if ".tsv" in path.name else ",")
    return path


def generic_tables():
    clicks = pd.DataFrame({"user": ["u1", "u1", "u2"], "item": [7, 7, 8],
                           "click_time": [100, 100, 250], "click_id": ["c", "b", "a"],
                           "shop": [1, 1, 2], "channel": ["ads", "feed", "ads"],
                           "price": [1.5, 2.5, 3.0]})
    conversions = pd.DataFrame({"user": ["u1"], "item": [7], "conversion_time": [400],
                                "value": [9.9]})
    return clicks, conversions


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv.gz"])
def test_generic_reader_normalises_the_tables(tmp_path, suffix):
    clicks, conversions = generic_tables()
    log = read_generic(write(clicks, tmp_path / f"clicks{suffix}"),
                       write(conversions, tmp_path / f"conv{suffix}"))
    assert log.features == ("channel",) and log.extras == ("price",)
    assert log.clicks["click_time"].dtype == np.float64
    assert log.clicks["item"].tolist() == [7, 7, 8] and log.clicks["user"].tolist()[0] == "u1"
    # String click ids break ties in sorted order: "a" < "b" < "c".
    assert log.click_order.tolist() == [2, 1, 0]
    assert list(log.conversions.columns) == ["user", "item", "conversion_time"]
    assert not log.journey


def test_generic_reader_accepts_iso_and_native_date_times(tmp_path):
    clicks, conversions = generic_tables()
    clicks["click_time"] = ["1970-01-01T00:01:40Z", "1970-01-01 00:01:40", "1970-01-01T00:04:10"]
    conversions["conversion_time"] = pd.to_datetime(["1970-01-01 00:06:40"])
    log = read_generic(write(clicks, tmp_path / "clicks.csv"),
                       write(conversions, tmp_path / "conv.parquet"))
    assert log.clicks["click_time"].tolist() == [100.0, 100.0, 250.0]
    assert log.conversions["conversion_time"].tolist() == [400.0]


@pytest.mark.parametrize("table, change, column, row", [
    ("clicks", lambda f: f.drop(columns="click_time"), "click_time", None),
    ("conversions", lambda f: f.drop(columns="item"), "item", None),
    ("clicks", lambda f: f.assign(click_time=["100", "101", "noon"]), "click_time", 2),
    ("clicks", lambda f: f.assign(click_time=[100, None, 3]), "click_time", 1),
    ("clicks", lambda f: f.assign(user=["u1", None, "u2"]), "user", 1),
    ("clicks", lambda f: f.assign(click_id=[4, 5, 4]), "click_id", 2),
    ("conversions", lambda f: f.assign(conversion_time=["soon"]), "conversion_time", 0),
    ("clicks", lambda f: f.assign(journey=1), "journey", None),
])
def test_generic_reader_names_file_column_and_row(tmp_path, table, change, column, row):
    tables = dict(zip(("clicks", "conversions"), generic_tables()))
    tables[table] = change(tables[table])
    paths = {name: write(frame, tmp_path / f"{name}.csv") for name, frame in tables.items()}
    with pytest.raises(DataError) as info:
        read_generic(paths["clicks"], paths["conversions"])
    assert info.value.file == str(paths[table])
    assert info.value.column == column and info.value.row == row


def test_reader_rejects_missing_files_and_unknown_types(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_generic(tmp_path / "nope.csv", tmp_path / "nope2.csv")
    (tmp_path / "clicks.json").write_text("{}")
    with pytest.raises(DataError, match="unknown file type"):
        read_criteo(tmp_path / "clicks.json")


def criteo_rows() -> pd.DataFrame:
    """Seven impressions: two conversions (one reached by clicks), extras the reader ignores."""
    frame = pd.DataFrame({
        "timestamp": [10, 20, 30, 40, 50, 60, 70],
        "uid": [1, 1, 1, 2, 2, 3, 3],
        "campaign": [5, 5, 5, 6, 6, 5, 5],
        "conversion": [1, 1, 1, 0, 0, 1, 1],
        "conversion_timestamp": [90, 90, 90, -1, -1, 95, 95],
        "conversion_id": [0, 0, 0, -1, -1, 1, 1],
        "attribution": [1, 1, 1, 0, 0, 0, 0],
        "click": [1, 0, 1, 1, 1, 0, 0],
        "click_pos": [0, -1, 1, -1, -1, -1, -1],
        "click_nb": [2, -1, 2, -1, -1, -1, -1],
        "cost": 0.001, "cpo": 0.1, "time_since_last_click": -1,
    })
    for i in range(1, 10):
        frame[f"cat{i}"] = np.arange(7) % (i + 1)
    return frame


def test_criteo_reader_builds_clicks_and_conversions(tmp_path):
    log = read_criteo(write(criteo_rows(), tmp_path / "criteo.tsv"))
    assert log.clicks["click_id"].tolist() == [0, 2, 3, 4]            # file rows of the clicks
    assert log.clicks["journey"].tolist() == [0, 0, -1, -1]
    assert log.clicks["click_time"].tolist() == [10.0, 30.0, 40.0, 50.0]
    assert log.features == tuple(f"cat{i}" for i in range(1, 10))
    assert "click_pos" not in log.clicks and "cost" not in log.clicks
    assert log.conversions.to_dict("list") == {"user": [1, 3], "item": [5, 5],
                                               "conversion_time": [90.0, 95.0], "journey": [0, 1]}
    assert log.journey and log.output_name("item") == "campaign"


@pytest.mark.parametrize("change, column, row", [
    (lambda f: f.drop(columns="conversion_id"), "conversion_id", None),
    (lambda f: f.assign(click=[1, 0, 2, 1, 1, 0, 0]), "click", 2),
    (lambda f: f.assign(conversion_id=[0, 0, 0, -1, "x", 1, 1]), "conversion_id", 4),
    (lambda f: f.assign(conversion_timestamp=[90, 90, 91, -1, -1, 95, 95]),
     "conversion_timestamp", 2),
    (lambda f: f.assign(conversion_timestamp=[90, 90, 90, -1, -1, None, 95]),
     "conversion_timestamp", 5),
    (lambda f: f.assign(timestamp=[10, 20, 30, "later", 50, 60, 70]), "timestamp", 3),
    (lambda f: f.assign(uid=[1, 1, 1, 2, None, 3, 3]), "uid", 4),
])
def test_criteo_reader_names_column_and_row(tmp_path, change, column, row):
    path = write(change(criteo_rows()), tmp_path / "criteo.csv")
    with pytest.raises(DataError) as info:
        read_criteo(path)
    assert (info.value.file, info.value.column, info.value.row) == (str(path), column, row)
