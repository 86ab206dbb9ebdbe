"""The Spark engine against the in-memory one: the same labels on random logs, the same output
directory from `malt attribute`. One local[2] session serves the whole file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from malt.cli import main
from malt.data import Schema, prepare
from malt.sources.attribution import AttributionConfig, attribute, read_criteo, read_generic
from malt.sources.attribution.spark.engine import attribute_spark
from malt.sources.attribution.spark.logs import Cache, read_criteo_spark, read_generic_spark
from malt.sources.attribution.spark.session import spark_session
from sources.attribution.test_attribution_command import criteo_fixture, generic_logs
from sources.attribution.test_attribution_impressions import (
    BAD_INPUTS,
    clicked_again,
    write_changed,
)

# The malt modules import pyspark only when they run: skip here, after the imports.
pytest.importorskip("pyspark")
if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
    pytest.skip("the Spark engine needs a Java runtime", allow_module_level=True)

# One xdist worker runs the whole module, so that `-n 2` starts one JVM, not two.
pytestmark = pytest.mark.xdist_group("spark")


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("malt tests")
               # Tiny inputs: few partitions, no adaptive re-planning between stages, and
               # interpreted expressions rather than compiling Java for every query.
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.sql.adaptive.enabled", "false")
               .config("spark.sql.codegen.wholeStage", "false")
               .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@st.composite
def raw_logs(draw):
    """Random logs in either layout: few users, items and distinct times, so that keys repeat,
    clicks tie in time, and clicks fall before, at and after conversions."""
    n = draw(st.integers(1, 25))
    m = draw(st.integers(0, 8))

    def ints(lo, hi, size):
        return np.array(draw(st.lists(st.integers(lo, hi), min_size=size, max_size=size)))
    layout = draw(st.sampled_from(["direct", "indirect-shop", "indirect-any", "criteo"]))
    time_scale = draw(st.sampled_from([1.0, 3600.0]))
    if layout == "criteo":
        conversion_time = ints(0, 60, m) * time_scale
        conversion_id = ints(-1, m - 1, n)
        frame = pd.DataFrame({
            "timestamp": ints(0, 50, n) * time_scale, "uid": ints(0, 2, n),
            "campaign": ints(0, 3, n), "click": ints(0, 1, n), "conversion_id": conversion_id,
            "conversion_timestamp": np.r_[conversion_time, -1.0][conversion_id],  # -1: none
            "cat1": ints(0, 2, n), "cat3": ints(5, 6, n)})
        frame.loc[0, "click"] = 1
        return {"criteo": frame}, "direct", float(draw(st.integers(1, 30))) * time_scale
    item = ints(0, 3, n)
    clicks = pd.DataFrame({"user": ints(0, 2, n), "item": item, "shop": item % 2,
                           "click_time": ints(0, 50, n) * time_scale,
                           "click_id": np.array(draw(st.permutations(range(n)))) * 7,
                           "channel": ints(0, 2, n), "score": np.linspace(0, 1, n)})
    if draw(st.booleans()):  # string ids (click ids tie-break as strings: "k14" < "k7")
        clicks["user"] = "u" + clicks["user"].astype(str)
        clicks["channel"] = "c" + clicks["channel"].astype(str)
        clicks["click_id"] = "k" + clicks["click_id"].astype(str)
    conversions = pd.DataFrame({"user": clicks["user"].iloc[ints(0, n - 1, m)].to_numpy(),
                                "item": ints(0, 3, m),
                                "conversion_time": ints(0, 70, m) * time_scale})
    return {"clicks": clicks, "conversions": conversions}, layout, \
        float(draw(st.integers(1, 30))) * time_scale


def spark_labels(spark, tables: dict, files: dict, config) -> pd.DataFrame:
    cache = Cache()
    try:
        with spark_session() as session:
            assert session is spark
            log = read_criteo_spark(spark, files["criteo"], cache) if "criteo" in tables else \
                read_generic_spark(spark, files["clicks"], files["conversions"], cache)
            labelled = attribute_spark(log, config, cache).labelled
            columns = [*config.labels, *(f"{label}_known_at" for label in config.labels)]
            # Backticks: a view's name may hold a dot.
            return labelled.select("click_id", *(f"`{c}`" for c in columns)).toPandas() \
                .set_index("click_id")
    finally:
        cache.release()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_logs(), st.sampled_from([(), ("channel",)]),
       st.sampled_from([(), (0.5,), (0.25, 2.0)]), st.sampled_from([None, ("last", "dda")]))
def test_spark_labels_equal_the_in_memory_labels(spark, case, dda_features, view_windows,
                                                 view_rules):
    tables, mode, window = case
    if "criteo" in tables:
        dda_features = ("cat1", "cat3")[:len(dda_features) + 1]
    config = AttributionConfig(window=window, mode=mode, half_life=3 * window,
                               position_shares=(0.5, 0.3, 0.2), dda_features=dda_features,
                               view_windows=tuple(f * window for f in view_windows),
                               view_rules=view_rules)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, table in tables.items():
            # Criteo's layout as a TSV (Spark infers its types), the generic tables as parquet.
            files[name] = str(Path(tmp) / (f"{name}.tsv" if name == "criteo"
                                           else f"{name}.parquet"))
            if name == "criteo":
                table.to_csv(files[name], sep="\t", index=False)
            else:
                table.to_parquet(files[name])
        log = read_criteo(files["criteo"]) if "criteo" in tables else \
            read_generic(files["clicks"], files["conversions"])
        expected = attribute(log, config)
        got = spark_labels(spark, tables, files, config)
    click_id = log.clicks["click_id"].to_numpy()
    assert sorted(got.index) == sorted(click_id)
    for label in config.labels:
        np.testing.assert_allclose(got.loc[click_id, label].to_numpy(), expected.labels[label],
                                   rtol=1e-9, atol=1e-12, err_msg=label)
        # Known-at times are conversion times, taken as they are: equal, NaN where none.
        np.testing.assert_array_equal(got.loc[click_id, f"{label}_known_at"].to_numpy(float),
                                      expected.known_at[label], err_msg=label)


def parquet_columns(path: Path) -> list[tuple[str, str, str]]:
    schema = pq.ParquetFile(path).schema
    return [(c.name, c.physical_type, str(c.logical_type)) for c in schema]


def assert_same_outputs(memory: Path, spark_out: Path) -> None:
    """Same files; same day contents and types (labels are float32: equal within one
    float32 rounding of float64 sums that agree to 1e-16); same vocabs and schema."""
    files = sorted(p.relative_to(memory) for p in memory.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(spark_out) for p in spark_out.rglob("*") if p.is_file())
    report = json.loads((memory / "attribution.json").read_text())
    labels = report["labels"]
    for file in files:
        if file.suffix == ".parquet":
            # The parquet column types (pyarrow also stores its own Arrow schema, Spark not).
            assert parquet_columns(spark_out / file) == parquet_columns(memory / file)
            want, got = pd.read_parquet(memory / file), pd.read_parquet(spark_out / file)
            others = [c for c in want.columns if c not in labels]
            pd.testing.assert_frame_equal(got[others], want[others])
            np.testing.assert_allclose(got[labels], want[labels], rtol=2e-7, atol=1e-12)
        elif file.name != "attribution.json":
            assert (spark_out / file).read_bytes() == (memory / file).read_bytes(), file
    spark_report = json.loads((spark_out / "attribution.json").read_text())
    assert (report.pop("engine"), spark_report.pop("engine")) == ("memory", "spark")
    for key in ("weight_sum", "positive_ratio"):
        assert spark_report.pop(key) == pytest.approx(report.pop(key), rel=1e-12)
    assert spark_report == report
    schema = Schema.load(spark_out / "schema.toml")
    for want, got in zip(prepare(memory, schema).days, prepare(spark_out, schema).days):
        for name, array in want.arrays().items():
            np.testing.assert_allclose(got.arrays()[name], array, rtol=2e-7, err_msg=name)


def test_malt_attribute_writes_the_same_output_on_spark(spark, tmp_path):
    args = [*generic_logs(tmp_path), "--name", "shop"]
    flags = ["--rules", "last,first,linear,position,time_decay,dda", "--mode", "indirect-shop",
             "--dda-features", "hour", "--user-fields", "age_band", "--window-days", "2",
             "--view-windows-days", "0.25,1", "--view-rules", "last,time_decay,dda"]
    assert main([*args, *flags, "--out", str(tmp_path / "memory")]) == 0
    assert main([*args, *flags, "--engine", "spark", "--out", str(tmp_path / "spark")]) == 0
    assert_same_outputs(tmp_path / "memory", tmp_path / "spark")
    written = pq.read_schema(next((tmp_path / "spark" / "train").glob("*.parquet"))).names
    assert {"last_6h", "dda_1d_known_at", "first_known_at"} <= set(written)


@pytest.mark.parametrize("read_as", ["--clicks", "--impressions"])
def test_criteo_log_on_spark_equals_memory(spark, tmp_path, read_as):
    source = tmp_path / "criteo_attribution_dataset.tsv.gz"
    criteo_fixture().to_csv(source, sep="\t", index=False, compression="gzip")
    args = ["attribute", read_as, str(source), "--format", "criteo",
            "--dda-features", "cat1,cat2", "--name", "criteo"]
    assert main([*args, "--out", str(tmp_path / "memory")]) == 0
    assert main([*args, "--engine", "spark", "--out", str(tmp_path / "spark")]) == 0
    assert_same_outputs(tmp_path / "memory", tmp_path / "spark")


def test_a_bad_unclicked_criteo_row_fails_as_impressions_only(spark, tmp_path, capsys):
    # Read as clicks, the row is not read; as impressions, it is refused on both engines.
    frame = criteo_fixture()
    row = int(np.flatnonzero((frame["click"] == 0) & (frame["conversion_id"] == -1))[0])
    frame["uid"] = frame["uid"].astype(object)
    frame.loc[row, "uid"] = None  # an impression nobody clicked, of no conversion
    source = tmp_path / "criteo.tsv"
    frame.to_csv(source, sep="\t", index=False)
    for engine in ("memory", "spark"):
        assert main(["attribute", "--format", "criteo", "--clicks", str(source), "--engine",
                     engine, "--out", str(tmp_path / f"clicks-{engine}")]) == 0
        capsys.readouterr()
        assert main(["attribute", "--format", "criteo", "--impressions", str(source),
                     "--engine", engine, "--out", str(tmp_path / engine)]) == 3
        assert f"criteo.tsv, column 'uid', row {row}: missing id" in \
            capsys.readouterr().err, engine


@pytest.mark.parametrize("change, message", [
    (lambda c: c.assign(click_time=c["click_time"].where(c.index != 3, "tomorrow")),
     "row 3: cannot parse time 'tomorrow'"),
    (lambda c: c.assign(click_id=[1, 2, 3, 2, 5]), "row 3: click id 2 appears twice"),
])
def test_bad_logs_fail_on_spark_as_in_memory(spark, tmp_path, capsys, change, message):
    args = generic_logs(tmp_path)
    clicks = change(pd.read_csv(tmp_path / "clicks.csv"))
    clicks.to_csv(tmp_path / "clicks.csv", index=False)
    for engine in ("memory", "spark"):
        assert main([*args, "--engine", engine, "--out", str(tmp_path / engine)]) == 3
        assert message in capsys.readouterr().err, engine
        assert not (tmp_path / engine).exists()


def test_a_missing_input_is_a_data_error(spark, tmp_path, capsys):
    missing = str(tmp_path / "nowhere.parquet")
    assert main(["attribute", "--engine", "spark", "--clicks", missing, "--conversions",
                 missing, "--out", str(tmp_path / "out")]) == 3
    assert "nowhere.parquet: file does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("twice", [False, True])
def test_impression_level_output_on_spark_equals_memory(spark, tmp_path, twice):
    args = [*write_changed(tmp_path, clicks=clicked_again if twice else None), "--name", "imp"]
    flags = ["--rules", "last,first,linear,position,time_decay,dda", "--dda-features",
             "channel", "--window-days", "2", "--view-windows-days", "0.5"]
    assert main([*args, *flags, "--out", str(tmp_path / "memory")]) == 0
    assert main([*args, *flags, "--engine", "spark", "--out", str(tmp_path / "spark")]) == 0
    assert_same_outputs(tmp_path / "memory", tmp_path / "spark")
    test = pd.read_parquet(tmp_path / "spark" / "test" / "test.parquet")
    assert test["impression_id"].tolist() == [106, 105]
    assert test["click"].tolist() == [1, 0]


@st.composite
def impression_tables(draw):
    """Random impressions (ids integers or strings, times tied), about half clicked (some
    several times), and conversions on some of the clicked (user, item) pairs, before and
    after the clicks."""
    n = draw(st.integers(2, 20))

    def ints(lo, hi, size):
        return np.array(draw(st.lists(st.integers(lo, hi), min_size=size, max_size=size)))
    ids = np.array(draw(st.permutations(range(n)))) * 3
    time = ints(0, 40, n) * 3600.0
    time[0], time[-1] = 0.0, 2 * 86400.0  # two days at least
    impressions = pd.DataFrame({"impression_id": ids, "user": ints(0, 2, n),
                                "item": ints(0, 2, n), "impression_time": time,
                                "channel": ints(0, 2, n)})
    clicked = np.flatnonzero(np.r_[1, ints(0, 1, n - 1)])  # one click at least
    again = ints(0, len(clicked) - 1, draw(st.integers(0, 4))).astype(np.int64)
    clicked = np.sort(np.r_[clicked, clicked[again]])
    clicks = pd.DataFrame({"click_id": np.array(draw(st.permutations(range(len(clicked))))),
                           "impression_id": ids[clicked],
                           "click_time": time[clicked] + ints(0, 2, len(clicked)) * 1800.0})
    if draw(st.booleans()):
        impressions["impression_id"] = "i" + impressions["impression_id"].astype(str)
        clicks["impression_id"] = "i" + clicks["impression_id"].astype(str)
    m = draw(st.integers(0, 6))
    conversions = pd.DataFrame({"user": ints(0, 2, m), "item": ints(0, 2, m),
                                "conversion_time": ints(0, 50, m) * 3600.0})
    return {"impressions": impressions, "clicks": clicks, "conversions": conversions}


@settings(max_examples=5, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(impression_tables())
def test_random_impression_logs_give_the_same_output_on_both_engines(spark, tmp_path, tables):
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        args = ["attribute", "--rules", "last,first,linear,dda", "--dda-features", "channel",
                "--name", "imp"]
        for name, table in tables.items():
            table.to_parquet(Path(tmp) / f"{name}.parquet")
            args += [f"--{name}", str(Path(tmp) / f"{name}.parquet")]
        assert main([*args, "--out", str(Path(tmp) / "memory")]) == 0
        assert main([*args, "--engine", "spark", "--out", str(Path(tmp) / "spark")]) == 0
        assert_same_outputs(Path(tmp) / "memory", Path(tmp) / "spark")


@pytest.mark.parametrize("changes, message", BAD_INPUTS)
def test_bad_impression_logs_fail_on_spark_as_in_memory(spark, tmp_path, capsys, changes,
                                                        message):
    args = write_changed(tmp_path, **changes)
    for engine in ("memory", "spark"):
        assert main([*args, "--engine", engine, "--out", str(tmp_path / engine)]) == 3
        assert message in capsys.readouterr().err, engine
        assert not (tmp_path / engine).exists()
