"""`malt attribute --impressions`: impression-level output (every impression, clicked or not,
with a click column and its click's labels) on a hand-built log with known answers, its
refusals of bad input, and attribute -> prepare -> train --entire-space end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from malt.cli import main
from malt.data import Schema, prepare
from malt.errors import DataError
from malt.sources.attribution.logs import read_criteo, read_impressions

H = 3600.0


def impression_logs(tmp_path) -> list[str]:
    """Six impressions over two days, four clicked, two conversions (times in hours).

    a/item 1: impressions 101 (0 h), 102 (1 h), 106 (26 h), clicked at 0.5, 1.5 and 26.1 h,
    converting at 27 h; a/item 2: 103 (2 h), not clicked; b/item 1: 104 (3 h) clicked at 3.2 h,
    converting at 4 h, and 105 (30 h), not clicked."""
    impressions = pd.DataFrame({
        "impression_id": [101, 102, 103, 104, 105, 106],
        "user": ["a", "a", "a", "b", "b", "a"],
        "item": [1, 1, 2, 1, 1, 1],
        "impression_time": np.array([0, 1, 2, 3, 30, 26]) * H,
        "channel": ["x", "y", "x", "y", "x", "y"],
        "bid": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    })
    clicks = pd.DataFrame({"click_id": [1, 2, 4, 6], "impression_id": [101, 102, 104, 106],
                           "click_time": np.array([0.5, 1.5, 3.2, 26.1]) * H,
                           # The click's own user and features are not read: its impression's are.
                           "user": ["z", "z", "z", "z"], "channel": ["q", "q", "q", "q"]})
    conversions = pd.DataFrame({"user": ["a", "b"], "item": [1, 1],
                                "conversion_time": np.array([27.0, 4.0]) * H})
    impressions.to_csv(tmp_path / "impressions.csv", index=False)
    clicks.to_parquet(tmp_path / "clicks.parquet")
    conversions.to_parquet(tmp_path / "conversions.parquet")
    return ["attribute", "--impressions", str(tmp_path / "impressions.csv"), "--clicks",
            str(tmp_path / "clicks.parquet"), "--conversions",
            str(tmp_path / "conversions.parquet")]


def read_output(out) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train day, test day) of an attribution output."""
    return (pd.read_parquet(out / "train" / "train-00.parquet"),
            pd.read_parquet(out / "test" / "test.parquet"))


def test_every_impression_is_a_row_with_its_clicks_labels(tmp_path):
    out = tmp_path / "out"
    assert main([*impression_logs(tmp_path), "--rules", "last,first,linear",
                 "--out", str(out)]) == 0
    train, test = read_output(out)
    # Days are cut by impression time, rows in impression order.
    assert train["impression_id"].tolist() == [101, 102, 103, 104]
    assert test["impression_id"].tolist() == [106, 105]
    rows = pd.concat([train, test]).set_index("impression_id").sort_index()
    assert rows["click"].dtype == np.int8
    assert rows["click"].tolist() == [1, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(rows["last"], [0, 0, 0, 1, 0, 1])
    np.testing.assert_allclose(rows["first"], [1, 0, 0, 1, 0, 0])
    np.testing.assert_allclose(rows["linear"], [1 / 3, 1 / 3, 0, 1, 0, 1 / 3], rtol=1e-7)
    # Known when the crediting conversion happened; null where the label is 0.
    np.testing.assert_array_equal(rows["linear_known_at"] / H, [27, 27, np.nan, 4, np.nan, 27])
    np.testing.assert_array_equal(rows["last_known_at"] / H,
                                  [np.nan, np.nan, np.nan, 4, np.nan, 27])
    # The click's time where clicked, the impression's elsewhere; the impression's features.
    np.testing.assert_allclose(rows["click_time"] / H, [0.5, 1.5, 2, 3.2, 30, 26.1])
    np.testing.assert_allclose(rows["impression_time"] / H, [0, 1, 2, 3, 30, 26])
    assert rows["user"].tolist() == ["a", "a", "a", "b", "b", "a"]
    assert rows["channel"].tolist() == ["x", "y", "x", "y", "x", "y"]
    assert list(train.columns) == [
        "user", "item", "channel", "last", "first", "linear", "last_known_at",
        "first_known_at", "linear_known_at", "click", "impression_time", "impression_id",
        "click_time", "bid"]

    schema = Schema.load(out / "schema.toml")
    assert schema.click_column == "click"
    assert schema.ignore_columns == ("impression_time", "impression_id", "click_time", "bid")
    report = json.loads((out / "attribution.json").read_text())
    assert (report["n_impressions"], report["n_clicks"], report["n_conversions"]) == (6, 4, 2)
    assert report["impressions"] == str(tmp_path / "impressions.csv")
    assert [d["rows"] for d in report["days"]] == [4, 2]
    # The click-level labels of the same clicks are the clicked rows' labels.
    dataset = prepare(out, schema)
    day = dataset.days[0].arrays()
    np.testing.assert_array_equal(day["click"], [1, 1, 0, 1])


def test_the_clicked_rows_equal_the_click_level_output(tmp_path):
    impression_logs(tmp_path)
    impressions = pd.read_csv(tmp_path / "impressions.csv")
    clicks = pd.read_parquet(tmp_path / "clicks.parquet")[["click_id", "impression_id",
                                                          "click_time"]]
    joined = clicks.merge(impressions.drop(columns="impression_time"), on="impression_id")
    joined.drop(columns="impression_id").to_parquet(tmp_path / "joined.parquet")
    flags = ["--rules", "last,first,linear,position,time_decay,dda", "--dda-features",
             "channel", "--window-days", "2"]
    assert main(["attribute", "--clicks", str(tmp_path / "joined.parquet"), "--conversions",
                 str(tmp_path / "conversions.parquet"), *flags,
                 "--out", str(tmp_path / "click-level")]) == 0
    assert main([*impression_logs(tmp_path), *flags, "--out", str(tmp_path / "imp")]) == 0
    by_click = pd.concat(read_output(tmp_path / "click-level")).set_index("click_id")
    rows = pd.concat(read_output(tmp_path / "imp")).set_index("impression_id")
    clicked = rows.loc[clicks["impression_id"].to_numpy()]
    by_click = by_click.loc[clicks["click_id"].to_numpy()]
    for label in ("last", "first", "linear", "position", "time_decay", "dda"):
        np.testing.assert_array_equal(clicked[label].to_numpy(), by_click[label].to_numpy())
        np.testing.assert_array_equal(clicked[f"{label}_known_at"].to_numpy(),
                                      by_click[f"{label}_known_at"].to_numpy())
        assert (rows.loc[rows["click"] == 0, label] == 0).all()


def write_changed(tmp_path, impressions=None, clicks=None):
    """The hand-built logs with the impressions and/or clicks changed."""
    args = impression_logs(tmp_path)
    if impressions is not None:
        impressions(pd.read_csv(tmp_path / "impressions.csv")).to_csv(
            tmp_path / "impressions.csv", index=False)
    if clicks is not None:
        clicks(pd.read_parquet(tmp_path / "clicks.parquet")).to_parquet(
            tmp_path / "clicks.parquet")
    return args


BAD_INPUTS = [
    ({"impressions": lambda f: f.drop(columns="impression_id")},
     "impressions.csv, column 'impression_id': missing required columns ['impression_id']"),
    ({"impressions": lambda f: f.assign(impression_id=[101, 102, None, 104, 105, 106])},
     "impressions.csv, column 'impression_id', row 2: missing id"),
    ({"impressions": lambda f: f.assign(impression_id=[101, 102, 103, 102, 105, 106])},
     "impressions.csv, column 'impression_id', row 3: impression id 102 appears twice"),
    ({"impressions": lambda f: f.assign(click=1)},
     "impressions.csv, column 'click': 'click' is a reserved column name"),
    ({"clicks": lambda f: f.drop(columns="impression_id")},
     "clicks.parquet, column 'impression_id': missing required columns ['impression_id']"),
    ({"clicks": lambda f: f.assign(impression_id=[101, 102, 999, 106])},
     "clicks.parquet, column 'impression_id', row 2: the click names impression 999, which is "
     "not in the impressions"),
    ({"clicks": lambda f: f.assign(impression_id=["101", "102", "104", "106"])},
     "clicks.parquet, column 'impression_id', row 0: the click names impression '101', which "
     "is not in the impressions"),
    ({"clicks": lambda f: f.iloc[:0]}, "clicks.parquet: the log holds no clicks"),
    ({"impressions": lambda f: f.assign(impression_time=f["impression_time"] % (24 * H))},
     "column 'impression_time': all impressions fall on one day"),
    ({"clicks": lambda f: f.assign(click_time=np.array([0.5, 0.5, 3.2, 26.1]) * H)},
     "clicks.parquet, column 'click_time', row 1: the click at 1800.0 comes before its "
     "impression at 3600.0"),
]


@pytest.mark.parametrize("changes, message", BAD_INPUTS)
def test_bad_impression_logs_are_refused(tmp_path, capsys, changes, message):
    args = write_changed(tmp_path, **changes)
    assert main([*args, "--out", str(tmp_path / "out")]) == 3
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_read_impressions_names_the_file_and_row(tmp_path):
    args = write_changed(tmp_path, clicks=lambda f: f.assign(impression_id=[101, 102, 999, 106]))
    with pytest.raises(DataError) as error:
        read_impressions(args[2], args[4], args[6])
    assert (error.value.file, error.value.column, error.value.row) == (
        str(tmp_path / "clicks.parquet"), "impression_id", 2)


def clicked_again(clicks: pd.DataFrame) -> pd.DataFrame:
    """The hand-built clicks and a second click on impressions 101 (at 0.8 h) and 106 (at
    26.5 h)."""
    again = pd.DataFrame({"click_id": [7, 8], "impression_id": [101, 106],
                          "click_time": np.array([0.8, 26.5]) * H, "user": ["z", "z"],
                          "channel": ["q", "q"]})
    return pd.concat([clicks, again], ignore_index=True)


def test_an_impression_clicked_twice_holds_the_sum_of_its_clicks_credit(tmp_path):
    # User a's journey to item 1 now has five clicks: 101 twice, 102, 106 twice.
    out = tmp_path / "out"
    args = write_changed(tmp_path, clicks=clicked_again)
    assert main([*args, "--rules", "last,first,linear", "--out", str(out)]) == 0
    rows = pd.concat(read_output(out)).set_index("impression_id").sort_index()
    assert rows["click"].tolist() == [1, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(rows["last"], [0, 0, 0, 1, 0, 1])
    np.testing.assert_allclose(rows["first"], [1, 0, 0, 1, 0, 0])
    np.testing.assert_allclose(rows["linear"], [2 / 5, 1 / 5, 0, 1, 0, 2 / 5], rtol=1e-7)
    np.testing.assert_array_equal(rows["last_known_at"] / H,
                                  [np.nan, np.nan, np.nan, 4, np.nan, 27])
    np.testing.assert_array_equal(rows["first_known_at"] / H,
                                  [27, np.nan, np.nan, 4, np.nan, np.nan])
    np.testing.assert_allclose(rows["click_time"] / H, [0.5, 1.5, 2, 3.2, 30, 26.1])
    report = json.loads((out / "attribution.json").read_text())
    assert (report["n_impressions"], report["n_clicks"]) == (6, 6)


def test_impression_sums_add_each_impressions_credits_and_no_others():
    from malt.sources.attribution.mac import impression_sums

    clicked = np.array([2, 0, 2, 2])
    credit = np.array([0.5, 0.25, 0.125, 1.0])
    np.testing.assert_array_equal(impression_sums(clicked, credit, 4), [0.25, 0, 1.625, 0])
    np.testing.assert_array_equal(impression_sums(clicked[:0], credit[:0], 2), [0, 0])


def test_the_writer_refuses_a_log_without_impressions(tmp_path):
    from malt.sources.attribution.logs import ImpressionLog
    from malt.sources.attribution.mac import write_impressions_mac

    nothing = np.zeros(0, np.int64)
    empty = ImpressionLog(clicks=None, impressions=pd.DataFrame({"impression_time": []}),
                          clicked=nothing, impression_order=nothing)
    with pytest.raises(DataError, match="^the log holds no impressions$"):
        write_impressions_mac(tmp_path, empty, {}, None, {})


def test_the_criteo_file_is_given_once_and_the_generic_clicks_always(tmp_path, capsys):
    args = impression_logs(tmp_path)
    assert main(["attribute", "--format", "criteo", "--impressions", args[2], "--clicks",
                 args[4], "--out", str(tmp_path / "out")]) == 3
    assert "--format criteo --impressions FILE reads the clicks from FILE" in \
        capsys.readouterr().err
    assert main(["attribute", "--impressions", args[2], "--conversions", args[6], "--out",
                 str(tmp_path / "out")]) == 3
    assert "--clicks is required" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_criteo_rows_read_as_impressions():
    import tempfile
    from pathlib import Path

    from sources.attribution.test_attribution_logs import criteo_rows, write

    with tempfile.TemporaryDirectory() as tmp:
        log = read_criteo(write(criteo_rows(), Path(tmp) / "criteo.tsv"), impressions=True)
    shown = log.impressions
    assert shown["impression_id"].tolist() == list(range(7))
    assert shown["impression_time"].tolist() == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    assert shown["user"].tolist() == [1, 1, 1, 2, 2, 3, 3]
    assert shown["cat2"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert log.clicked.tolist() == [0, 2, 3, 4] == log.clicks.clicks["click_id"].tolist()
    assert log.clicks.clicks["impression_id"].tolist() == [0, 2, 3, 4]
    assert log.journey and log.features == tuple(f"cat{i}" for i in range(1, 10))


def test_criteo_impressions_hold_the_click_level_labels_of_their_rows(tmp_path):
    from sources.attribution.test_attribution_command import criteo_fixture

    source = tmp_path / "criteo.tsv"
    frame = criteo_fixture()
    frame.to_csv(source, sep="\t", index=False)
    flags = ["--format", "criteo", "--rules", "last,first,linear,dda", "--dda-features", "cat1"]
    assert main(["attribute", "--clicks", str(source), *flags,
                 "--out", str(tmp_path / "clicks")]) == 0
    assert main(["attribute", "--impressions", str(source), *flags,
                 "--out", str(tmp_path / "imp")]) == 0
    def every_day(out):
        return pd.concat([pd.read_parquet(p) for p in sorted(out.glob("*/*.parquet"))])

    by_click = every_day(tmp_path / "clicks").set_index("click_id").sort_index()
    rows = every_day(tmp_path / "imp").set_index("impression_id").sort_index()
    assert rows.index.tolist() == list(range(len(frame)))
    assert rows["click"].tolist() == frame["click"].tolist()
    clicked = rows.loc[by_click.index]
    np.testing.assert_array_equal(clicked["click_time"], by_click["timestamp"])
    np.testing.assert_array_equal(clicked["user"], by_click["uid"])
    for label in ("last", "first", "linear", "dda"):
        np.testing.assert_array_equal(clicked[label], by_click[label])
        np.testing.assert_array_equal(clicked[f"{label}_known_at"],
                                      by_click[f"{label}_known_at"])
        assert (rows.loc[rows["click"] == 0, label] == 0).all()
    report = json.loads((tmp_path / "imp" / "attribution.json").read_text())
    assert report["journeys_given"] and report["n_impressions"] == len(frame)


def random_impression_logs(tmp_path, users: int = 40, days: int = 3, seed: int = 0
                           ) -> list[str]:
    """A random impression log: each user sees items over `days` days, clicks about a third of
    the impressions (a sixth of those twice or three times), and buys some of the clicked
    items a few hours later."""
    rng = np.random.default_rng(seed)
    n = users * 12
    impressions = pd.DataFrame({
        "impression_id": rng.permutation(n) + 1000,
        "user": rng.integers(0, users, n), "item": rng.integers(0, 6, n),
        "impression_time": np.sort(rng.uniform(0, days * 24 * H, n)),
        "channel": rng.integers(0, 3, n)})
    clicked = np.flatnonzero(rng.random(n) < 0.35 + 0.2 * (impressions["channel"] == 0))
    again = clicked[rng.random(len(clicked)) < 1 / 6]
    clicked = np.sort(np.r_[clicked, np.repeat(again, rng.integers(1, 3, len(again)))])
    clicks = pd.DataFrame({"click_id": np.arange(len(clicked)),
                           "impression_id": impressions["impression_id"].to_numpy()[clicked],
                           "click_time": impressions["impression_time"].to_numpy()[clicked]
                           + rng.uniform(0, 60, len(clicked))})
    bought = clicked[rng.random(len(clicked)) < 0.4]
    conversions = pd.DataFrame({"user": impressions["user"].to_numpy()[bought],
                                "item": impressions["item"].to_numpy()[bought],
                                "conversion_time": impressions["impression_time"].to_numpy()
                                [bought] + rng.uniform(0.1, 5, len(bought)) * H})
    impressions.to_parquet(tmp_path / "impressions.parquet")
    clicks.to_parquet(tmp_path / "clicks.parquet")
    conversions.to_parquet(tmp_path / "conversions.parquet")
    return ["attribute", "--impressions", str(tmp_path / "impressions.parquet"), "--clicks",
            str(tmp_path / "clicks.parquet"), "--conversions",
            str(tmp_path / "conversions.parquet")]


def test_impressions_clicked_several_times_sum_their_clicks_click_level_labels(tmp_path):
    args = random_impression_logs(tmp_path)
    impressions = pd.read_parquet(tmp_path / "impressions.parquet")
    clicks = pd.read_parquet(tmp_path / "clicks.parquet")
    assert clicks["impression_id"].duplicated().sum() > 10
    joined = clicks.merge(impressions.drop(columns="impression_time"), on="impression_id")
    joined.drop(columns="impression_id").to_parquet(tmp_path / "joined.parquet")
    flags = ["--rules", "last,first,linear,dda", "--dda-features", "channel"]
    assert main(["attribute", "--clicks", str(tmp_path / "joined.parquet"), "--conversions",
                 str(tmp_path / "conversions.parquet"), *flags,
                 "--out", str(tmp_path / "click-level")]) == 0
    assert main([*args, *flags, "--out", str(tmp_path / "imp")]) == 0
    by_click = pd.concat(read_output(tmp_path / "click-level")).merge(
        clicks[["click_id", "impression_id"]], on="click_id")
    rows = pd.concat(read_output(tmp_path / "imp")).set_index("impression_id")
    per_impression = by_click.groupby("impression_id")
    clicked = rows.loc[per_impression.size().index]
    assert (clicked["click"] == 1).all() and (rows["click"].sum() == len(clicked))
    np.testing.assert_array_equal(clicked["click_time"], per_impression["click_time"].min())
    for label in ("last", "first", "linear", "dda"):
        np.testing.assert_allclose(clicked[label], per_impression[label].sum(), rtol=1e-6)
        credited = by_click[f"{label}_known_at"].where(by_click[label] > 0)
        np.testing.assert_array_equal(clicked[f"{label}_known_at"],
                                      credited.groupby(by_click["impression_id"]).min())
        assert (rows.loc[rows["click"] == 0, label] == 0).all()


@pytest.mark.slow
def test_attribute_prepare_train_entire_space(tmp_path, capsys):
    data = tmp_path / "data"
    assert main([*random_impression_logs(tmp_path), "--rules", "last,first",
                 "--out", str(data)]) == 0
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "mmoe", "--main", "last", "--aux",
                 "first", "--entire-space", "--batch-size", "64", "--device", "cpu",
                 "--seed", "3", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    days = json.loads((data / "attribution.json").read_text())["days"]
    # Entire-space training fits every impression of the training days, clicked or not.
    assert metrics["train"]["rows"] == sum(d["rows"] for d in days if d["split"] == "train")
    test = pd.read_parquet(data / "test" / "test.parquet")
    assert metrics["eval_rows"] == len(test)
    assert metrics["impressions"]["last"]["clicked"] == pytest.approx(test["click"].mean())
    assert 0 <= metrics["impressions"]["last"]["ctr_auc"] <= 1
    assert "views scored on the clicked impressions" in capsys.readouterr().out
