"""The Spark engine of `attribute_logs`: read (`spark.logs`), attribute (`spark.engine`),
write (`spark.mac`) on one session (`spark.session`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from malt.data.schema import Schema
from malt.sources.attribution.config import AttributionConfig, LogFormat
from malt.sources.attribution.mac import WrittenDay
from malt.sources.attribution.protocol import LabelStats
from malt.sources.attribution.spark.engine import SparkAttribution, attribute_spark
from malt.sources.attribution.spark.logs import (
    Cache,
    SparkLog,
    read_criteo_spark,
    read_generic_spark,
)
from malt.sources.attribution.spark.mac import write_mac_spark
from malt.sources.attribution.spark.session import spark_session


class SparkEngine:
    """PySpark DataFrames on `spark`; what it caches is released when its run ends."""

    def __init__(self, spark, cache: Cache):
        self.spark, self.cache = spark, cache
        self.summary: dict = {}

    def read(self, clicks: str | Path, conversions: str | Path | None, log_format: LogFormat
             ) -> SparkLog:
        # Paths go to Spark as given: hdfs://, s3a:// and directories are Spark's to read.
        if log_format == "criteo":
            return read_criteo_spark(self.spark, str(clicks), self.cache)
        return read_generic_spark(self.spark, str(clicks), str(conversions), self.cache)

    def attribute(self, log: SparkLog, config: AttributionConfig) -> SparkAttribution:
        result = attribute_spark(log, config, self.cache)
        result.labelled = self.cache(result.labelled)
        return result

    def write(self, stage: Path, log: SparkLog, labelled: SparkAttribution, schema: Schema
              ) -> list[WrittenDay]:
        days, self.summary = write_mac_spark(stage, log, labelled.labelled, schema)
        return days

    def statistics(self, log: SparkLog, labelled: SparkAttribution) -> LabelStats:
        """From the sums the writer took (it runs first)."""
        rules = labelled.labels
        return LabelStats(
            n_clicks=log.n_clicks, n_conversions=log.n_conversions,
            attributed_conversions=labelled.attributed_conversions, pairs=labelled.pairs,
            positive_ratio={r: self.summary[f"positive {r}"] / log.n_clicks for r in rules},
            weight_sum={r: float(self.summary[f"sum {r}"]) for r in rules})


@contextmanager
def spark_engine(master: str | None) -> Iterator[SparkEngine]:
    """A `SparkEngine` on the session of `spark_session(master)`."""
    with spark_session(master) as spark:
        cache = Cache()
        try:
            yield SparkEngine(spark, cache)
        finally:
            cache.release()
