"""`malt attribute` end to end: raw logs -> MAC layout -> `prepare` with the written schema."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from malt.cli import main
from malt.data import Schema, prepare
from malt.errors import ConfigError
from malt.sources.attribution.spark.session import require_java

DAY = 86400

# Journeys of the Criteo fixture (row numbers of the click rows, in time order).
CONVERSION_0 = [0, 3, 5]        # user 1, campaign 100, converts at 2 days + 100 s
CONVERSION_1 = [7]              # user 2, campaign 200


def criteo_fixture() -> pd.DataFrame:
    """Hand-made journeys followed by random filler impressions over three days."""
    rows = [  # timestamp, uid, campaign, click, conversion_id, conversion_timestamp
        (1000, 1, 100, 1, 0, 2 * DAY + 100),
        (5000, 1, 100, 0, 0, 2 * DAY + 100),         # an impression: never credited
        (3000, 1, 200, 1, -1, -1),
        (90000, 1, 100, 1, 0, 2 * DAY + 100),
        (4000, 1, 200, 1, -1, -1),
        (2 * DAY, 1, 100, 1, 0, 2 * DAY + 100),
        (30000, 2, 200, 0, 1, 50000),
        (40000, 2, 200, 1, 1, 50000),
        (60000, 3, 300, 0, 2, 70000),                  # conversion without clicks
        (100000, 3, 100, 1, -1, -1),
    ]
    rng = np.random.default_rng(0)
    for _ in range(30):
        rows.append((int(rng.integers(0, 3 * DAY)), int(rng.integers(4, 9)),
                     int(rng.choice([100, 200, 300])), int(rng.integers(0, 2)), -1, -1))
    frame = pd.DataFrame(rows, columns=["timestamp", "uid", "campaign", "click", "conversion_id",
                                        "conversion_timestamp"])
    frame["conversion"] = (frame["conversion_id"] >= 0).astype(int)
    frame["attribution"] = 0
    frame["click_pos"] = -1
    frame["click_nb"] = -1
    frame["cost"] = rng.random(len(frame)) * 1e-3
    frame["cpo"] = 0.2
    frame["time_since_last_click"] = -1
    for i in range(1, 10):
        frame[f"cat{i}"] = rng.integers(0, 4 + i, len(frame))
    return frame


def read_days(out):
    files = sorted((out / "train").glob("*.parquet")) + [out / "test" / "test.parquet"]
    return [pq.read_table(f).to_pandas() for f in files]


def test_criteo_log_through_attribute_and_prepare(tmp_path, capsys):
    source = tmp_path / "criteo_attribution_dataset.tsv.gz"
    criteo_fixture().to_csv(source, sep="\t", index=False, compression="gzip")
    out = tmp_path / "attributed"
    assert main(["attribute", "--clicks", str(source), "--format", "criteo", "--out", str(out)
                 ]) == 0
    printed = capsys.readouterr().out
    assert "2 with at least one click" in printed and "dda" in printed

    days = read_days(out)
    assert len(days) == 3 and all(np.all(np.diff(d["timestamp"]) >= 0) for d in days)
    frame = pd.concat(days, ignore_index=True).set_index("click_id")
    clicks = criteo_fixture().query("click == 1")
    assert sorted(frame.index) == sorted(clicks.index)
    assert not {"click_pos", "click_nb", "conversion_id", "cost"} & set(frame.columns)
    expected = {"last": [0, 0, 1], "first": [1, 0, 0], "linear": [1 / 3] * 3,
                "position": [0.4, 0.2, 0.4]}
    for rule, weights in expected.items():
        np.testing.assert_allclose(frame.loc[CONVERSION_0, rule], weights, rtol=1e-6)
    decay = 2.0 ** (-(2 * DAY + 100 - frame.loc[CONVERSION_0, "timestamp"]) / (7 * DAY))
    np.testing.assert_allclose(frame.loc[CONVERSION_0, "time_decay"], decay / decay.sum(),
                               rtol=1e-6)
    np.testing.assert_allclose(frame.loc[CONVERSION_0, "dda"].sum(), 1.0, rtol=1e-6)
    for rule in ("last", "first", "linear", "position", "time_decay", "dda"):
        np.testing.assert_allclose(frame.loc[CONVERSION_1, rule], 1.0)
        others = frame.index.difference(CONVERSION_0 + CONVERSION_1)
        assert (frame.loc[others, rule] == 0).all()

    summary = json.loads((out / "attribution.json").read_text())
    assert summary["window_days"] == 30.0
    assert summary["weight_sum"]["linear"] == pytest.approx(2.0)

    schema = Schema.load(out / "schema.toml")
    assert schema.user_column == "uid"
    assert [f.name for f in schema.fields if f.group == "ad"] == ["campaign"]
    assert [f.name for f in schema.fields if f.group == "context"] == [f"cat{i}"
                                                                       for i in range(1, 10)]
    dataset = prepare(out, schema)
    assert [d.name for d in dataset.train] == ["train-00", "train-01"]
    for day, table in zip(dataset.days, days):
        arrays = day.arrays()
        np.testing.assert_allclose(arrays["weights"], table[list(schema.labels)].to_numpy())
        vocab = json.loads((out / "vocabs" / "campaign.json").read_text())
        campaign = schema.field_names.index("campaign")
        np.testing.assert_array_equal(arrays["sparse"][:, campaign],
                                      [vocab[str(c)] for c in table["campaign"]])


def test_window_and_rule_subset(tmp_path):
    source = tmp_path / "criteo.csv"
    criteo_fixture().to_csv(source, index=False)
    out = tmp_path / "out"
    assert main(["attribute", "--clicks", str(source), "--format", "criteo", "--out", str(out),
                 "--rules", "first,linear", "--window-days", "1"]) == 0
    frame = pd.concat(read_days(out), ignore_index=True).set_index("click_id")
    assert list(Schema.load(out / "schema.toml").labels) == ["first", "linear"]
    assert "last" not in frame.columns
    # The first click is 2 days old at the conversion: outside a one-day window.
    np.testing.assert_allclose(frame.loc[CONVERSION_0, "first"], [0, 1, 0])
    np.testing.assert_allclose(frame.loc[CONVERSION_0, "linear"], [0, 0.5, 0.5])


def generic_logs(tmp_path):
    clicks = pd.DataFrame({
        "user": ["a", "a", "a", "b", "b"],
        "item": [1, 2, 3, 1, 1],
        "shop": [10, 10, 20, 10, 10],
        "click_time": ["2024-05-01T08:00:00", "2024-05-01T09:00:00", "2024-05-02T09:00:00",
                       "2024-05-02T10:00:00", "2024-05-03T10:00:00"],
        "click_id": [1, 2, 3, 4, 5],
        "age_band": [3, 3, 3, 1, 1],
        "hour": [8, 9, 9, 10, 10],
        "score": [0.1, 0.2, 0.3, 0.4, 0.5],
    })
    conversions = pd.DataFrame({"user": ["a", "b"], "item": [2, 1],
                                "conversion_time": ["2024-05-02T12:00:00",
                                                    "2024-05-03T10:00:00"]})
    clicks.to_csv(tmp_path / "clicks.csv", index=False)
    conversions.to_parquet(tmp_path / "conversions.parquet")
    return ["attribute", "--clicks", str(tmp_path / "clicks.csv"),
            "--conversions", str(tmp_path / "conversions.parquet")]


def test_generic_log_indirect_shop_mode_and_groups(tmp_path):
    out = tmp_path / "out"
    assert main([*generic_logs(tmp_path), "--mode", "indirect-shop", "--rules", "linear,last",
                 "--user-fields", "age_band", "--dda-features", "hour", "--out", str(out)]) == 0
    frame = pd.concat(read_days(out), ignore_index=True).set_index("click_id")
    # Conversion of a on item 2 (shop 10) credits a's clicks on items 1 and 2, not item 3 (shop
    # 20); b's conversion at the very second of its second click credits both of b's clicks.
    np.testing.assert_allclose(frame["linear"].sort_index(), [0.5, 0.5, 0, 0.5, 0.5])
    np.testing.assert_allclose(frame["last"].sort_index(), [0, 1, 0, 0, 1])
    schema = Schema.load(out / "schema.toml")
    groups = {f.name: f.group for f in schema.fields}
    assert groups == {"age_band": "user", "item": "ad", "shop": "ad", "hour": "context"}
    assert set(schema.ignore_columns) == {"click_time", "click_id", "score"}
    dataset = prepare(out, schema)
    assert sum(d.rows for d in dataset.days) == 5


def test_float_click_columns_are_named_and_offered_as_numeric_features(tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="malt"):
        assert main([*generic_logs(tmp_path), "--rules", "linear", "--out", str(out)]) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "float click columns are written but are not features (the schema lists them under "
        f"ignore_columns): score. To train on them, take them out of ignore_columns in "
        f"{out / 'schema.toml'} and add the line `numeric = [\"score\"]` (the schema holds "
        "it, commented)"]
    text = (out / "schema.toml").read_text()
    assert '\n# numeric = ["score"]\n' in text
    assert not Schema.load(out / "schema.toml").numeric
    # doing what the comment says makes it a numeric feature
    edited = text.replace('"click_id", "score"]', '"click_id"]').replace("# numeric", "numeric")
    (out / "schema.toml").write_text(edited)
    schema = Schema.load(out / "schema.toml")
    assert [f.name for f in schema.numeric] == ["score"] and "score" not in schema.ignore_columns
    numeric = np.concatenate([d.arrays()["numeric"][:, 0] for d in prepare(out, schema).days])
    np.testing.assert_allclose(np.sort(numeric), [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)


def test_a_log_without_float_click_columns_says_nothing_of_them(tmp_path, caplog):
    out = tmp_path / "out"
    args = generic_logs(tmp_path)
    pd.read_csv(tmp_path / "clicks.csv").drop(columns="score").to_csv(tmp_path / "clicks.csv",
                                                                      index=False)
    with caplog.at_level(logging.WARNING, logger="malt"):
        assert main([*args, "--rules", "linear", "--out", str(out)]) == 0
    assert not [r for r in caplog.records if "float click columns" in r.getMessage()]
    assert "numeric" not in (out / "schema.toml").read_text()


def test_direct_mode_credits_only_the_converted_item(tmp_path):
    out = tmp_path / "out"
    assert main([*generic_logs(tmp_path), "--rules", "linear", "--out", str(out)]) == 0
    frame = pd.concat(read_days(out), ignore_index=True).set_index("click_id")
    np.testing.assert_allclose(frame["linear"].sort_index(), [0, 1, 0, 0.5, 0.5])


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    args = [*generic_logs(tmp_path), "--rules", "linear", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 3
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args[:-4], "--rules", "first", "--out", str(out), "--overwrite"]) == 0
    assert list(Schema.load(out / "schema.toml").labels) == ["first"]
    (out / "my-schema.toml").write_text("mine")
    assert main([*args, "--overwrite"]) == 3
    assert "my-schema.toml" in capsys.readouterr().err
    assert list(Schema.load(out / "schema.toml").labels) == ["first"]


@pytest.mark.parametrize("extra, message", [
    (["--format", "criteo"], "drop --conversions"),
    (["--mode", "indirect-any", "--rules", "last,shapley"], "--rules = 'shapley': expected one of"),
    (["--window-days", "0"], "--window-days = '0': expected a number > 0 (inf allowed)"),
    (["--dda-features", "colour"], "not click columns"),
    (["--user-fields", "hour", "--ad-fields", "hour"], "both the user and the ad group"),
    (["--master", "local[2]"], "--master only applies to --engine spark"),
])
def test_bad_flags_exit_with_a_message(tmp_path, capsys, extra, message):
    assert main([*generic_logs(tmp_path), *extra, "--out", str(tmp_path / "out")]) == 3
    assert message in capsys.readouterr().err


def test_bad_logs_exit_with_file_column_and_row(tmp_path, capsys):
    args = generic_logs(tmp_path)
    clicks = pd.read_csv(tmp_path / "clicks.csv")
    clicks.loc[3, "click_time"] = "tomorrow"
    clicks.to_csv(tmp_path / "clicks.csv", index=False)
    assert main([*args, "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert "clicks.csv" in err and "'click_time'" in err and "row 3" in err

    clicks["click_time"] = "2024-05-01T08:00:00"
    clicks.to_csv(tmp_path / "clicks.csv", index=False)
    assert main([*args, "--out", str(tmp_path / "out")]) == 3
    assert "one day" in capsys.readouterr().err

    clicks = clicks.rename(columns={"hour": "last"})
    clicks["click_time"] = [0, 1, 2, DAY, 2 * DAY]
    clicks.to_csv(tmp_path / "clicks.csv", index=False)
    assert main([*args, "--out", str(tmp_path / "out")]) == 3
    assert "clash" in capsys.readouterr().err


def test_spark_engine_without_pyspark_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` fails
    out = tmp_path / "out"
    assert main([*generic_logs(tmp_path), "--engine", "spark", "--out", str(out)]) == 3
    assert "pip install 'malt[spark]'" in capsys.readouterr().err
    assert not out.exists()


def test_spark_engine_without_java_says_so(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="needs a Java runtime .* openjdk-17-jre-headless"):
        require_java()
    monkeypatch.setenv("JAVA_HOME", str(Path(sys.executable).parent.parent))
    with pytest.raises(ConfigError, match="needs a Java runtime"):
        require_java()  # a JAVA_HOME without bin/java is not one
