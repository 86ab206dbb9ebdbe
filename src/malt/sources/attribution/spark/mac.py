"""Writer of the MAC layout from a labelled Spark DataFrame: the layout and the column types of
`mac.write_mac`, the day files written by Spark.

Spark writes every day into a hidden folder of the output (one task per day, rows in click
order, zstd), then each day's file is renamed to its MAC name; the vocabs (the distinct ids of
every vocab column, collected to the driver) and the schema are written as `mac` writes them.
The output directory must be one the driver and every executor see at the same path (any path
in local mode; a shared mount on a cluster), as `malt prepare` reads it from local disk.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from malt.data.schema import Schema
from malt.errors import DataError
from malt.sources.attribution.config import DAY
from malt.sources.attribution.mac import (
    CLICK_COLUMN,
    WrittenDay,
    day_files,
    float_columns,
    output_columns,
    write_vocabs_and_schema,
)
from malt.sources.attribution.spark.engine import CLICK_ORDER
from malt.sources.attribution.spark.logs import SparkImpressionLog, SparkLog, named

_SPARK_DAYS = ".spark-days"


def write_impressions_spark(out: Path, log: SparkImpressionLog, labelled, schema: Schema
                            ) -> tuple[list[WrittenDay], dict]:
    """Write every impression of `log` with the labels of its clicks in `labelled` (the clicks
    with one float64 column per label and its known-at time), 0 and null where none, as
    `mac.write_impressions_mac` does: days by impression time, rows in impression order, the
    click column, an impression's labels summed over its clicks in ascending order from 0 (the
    bits of `mac.impression_sums`), known at the earliest crediting click's time, and
    `click_time` the first click's time or else the impression's. The summary's sums and
    positive counts are over the clicks, as the in-memory engine's statistics."""
    from pyspark.sql import functions as F

    rules, known = schema.labels, schema.known_at_columns
    per_impression = labelled.groupBy("impression_id").agg(
        F.min("click_time").alias("_click_time"),
        *[F.aggregate(F.array_sort(F.collect_list(named(label))), F.lit(0.0),
                      lambda total, credit: total + credit).alias(label) for label in rules],
        *[F.min(F.when(named(label) > 0, named(column))).alias(column)
          for label, column in zip(rules, known, strict=True)])
    rows = log.impressions.join(per_impression, "impression_id", "left")
    rows = rows.withColumns({
        CLICK_COLUMN: F.col("_click_time").isNotNull().cast("tinyint"),
        "click_time": F.coalesce(F.col("_click_time"), F.col("impression_time")),
        **{label: F.coalesce(named(label), F.lit(0.0)) for label in rules}})
    written, summary = write_mac_spark(out, log, rows, schema, time="impression_time",
                                       order=("impression_time", "impression_id"))
    by_click = labelled.agg(*[F.sum(named(r)).alias(f"sum {r}") for r in rules],
                            *[F.count(F.when(named(r) > 0, 1)).alias(f"positive {r}")
                              for r in rules]).first().asDict()
    return written, {**summary, **by_click}


def write_mac_spark(out: Path, log: SparkLog | SparkImpressionLog, labelled, schema: Schema,
                    time: str = "click_time", order: tuple[str, ...] = CLICK_ORDER
                    ) -> tuple[list[WrittenDay], dict]:
    """Write `labelled` (the rows with one float64 column per label and its known-at time)
    under `out`, cut into days by the column `time`, each day ordered by `order`; also the sum
    and the count of positive labels of every label ("sum <label>", "positive <label>")."""
    from pyspark.sql import functions as F

    rules = schema.labels
    summary = labelled.agg(F.min(time).alias("t0"),
                           *[F.sum(named(r)).alias(f"sum {r}") for r in rules],
                           *[F.count(F.when(named(r) > 0, 1)).alias(f"positive {r}")
                             for r in rules]).first().asDict()
    if summary["t0"] is None:
        raise DataError(f"the log holds no {'impressions' if schema.click_column else 'clicks'}")
    frame = labelled.withColumn("_day", F.floor((F.col(time) - F.lit(summary["t0"]))
                                                / F.lit(DAY)).cast("long"))
    days = sorted(tuple(r) for r in frame.groupBy("_day").count().collect())
    files = day_files(out, len(days), schema.click_column is not None)
    # A weight too small for float32 is written as 0, and a label of 0 has no known-at time.
    known = {column: F.when(named(label).cast("float") > 0, named(column))
             for label, column in zip(rules, schema.known_at_columns, strict=True)}
    columns = [(named(source).cast("float") if source in rules
                else known.get(source, named(source))).alias(column)
               for column, source in output_columns(log, schema)]
    spark_days = out / _SPARK_DAYS
    (frame.repartition("_day").sortWithinPartitions("_day", *order)
     .select(*columns, "_day").write.partitionBy("_day")
     .option("compression", "zstd").option("maxRecordsPerFile", 0)
     .parquet(spark_days.resolve().as_uri()))
    written = []
    for (split, path), (day, rows) in zip(files, days):
        parts = sorted((spark_days / f"_day={day}").glob("part-*.parquet"))
        if len(parts) != 1:
            raise RuntimeError(f"Spark wrote {len(parts)} files for day {day}, expected one")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(parts[0], path)
        written.append(WrittenDay(split, path, rows))
    shutil.rmtree(spark_days)
    vocabs = _distinct_ids(labelled.select(*columns), schema.vocab_columns)
    write_vocabs_and_schema(out, schema, vocabs.__getitem__, float_columns(log))
    return written, summary


def _distinct_ids(frame, columns: tuple[str, ...]) -> dict:
    """column -> numpy array of its distinct values (long or string ids), in one pass."""
    from pyspark.sql import functions as F

    types = dict(frame.dtypes)
    parts = [frame.select(F.lit(i).alias("_c"),
                          (F.col(c) if types[c] != "string" else F.lit(None)).cast("long")
                          .alias("_l"),
                          (F.col(c) if types[c] == "string" else F.lit(None)).cast("string")
                          .alias("_s")) for i, c in enumerate(columns)]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionAll(part)
    found = union.distinct().toPandas()
    return {c: found.loc[found["_c"] == i, "_s" if types[c] == "string" else "_l"]
            .to_numpy(dtype=object if types[c] == "string" else np.int64)
            for i, c in enumerate(columns)}
