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
    SparkImpressionLog,
    SparkLog,
    read_criteo_spark,
    read_generic_spark,
    read_impressions_spark,
)
from malt.sources.attribution.spark.mac import write_impressions_spark, write_mac_spark
from malt.sources.attribution.spark.session import spark_session


class SparkEngine:
    """PySpark DataFrames on `spark`; what it caches is released when its run ends."""

    def __init__(self, spark, cache: Cache):
        self.spark, self.cache = spark, cache
        self.summary: dict = {}

    def read(self, clicks: str | Path, conversions: str | Path | None, log_format: LogFormat,
             impressions: str | Path | None = None) -> SparkLog | SparkImpressionLog:
        # Paths go to Spark as given: hdfs://, s3a:// and directories are Spark's to read.
        if impressions is not None:
            if log_format == "criteo":
                return read_criteo_spark(self.spark, str(impressions), self.cache,
                                         impressions=True)
            return read_impressions_spark(self.spark, str(impressions), str(clicks),
                                          str(conversions), self.cache)
        if log_format == "criteo":
            return read_criteo_spark(self.spark, str(clicks), self.cache)
        return read_generic_spark(self.spark, str(clicks), str(conversions), self.cache)

    def attribute(self, log: SparkLog | SparkImpressionLog, config: AttributionConfig
                  ) -> SparkAttribution:
        result = attribute_spark(_clicks(log), config, self.cache)
        result.labelled = self.cache(result.labelled)
        return result

    def write(self, stage: Path, log: SparkLog | SparkImpressionLog,
              labelled: SparkAttribution, schema: Schema) -> list[WrittenDay]:
        writer = write_impressions_spark if isinstance(log, SparkImpressionLog) \
            else write_mac_spark
        days, self.summary = writer(stage, log, labelled.labelled, schema)
        return days

    def statistics(self, log: SparkLog | SparkImpressionLog, labelled: SparkAttribution
                   ) -> LabelStats:
        """From the sums the writer took (it runs first): an unclicked impression's labels
        are 0, so the sums and positive counts over impressions are those over the clicks."""
        rules, clicks = labelled.labels, _clicks(log)
        return LabelStats(
            n_clicks=clicks.n_clicks, n_conversions=clicks.n_conversions,
            attributed_conversions=labelled.attributed_conversions, pairs=labelled.pairs,
            positive_ratio={r: self.summary[f"positive {r}"] / clicks.n_clicks for r in rules},
            weight_sum={r: float(self.summary[f"sum {r}"]) for r in rules},
            n_impressions=log.n_impressions if isinstance(log, SparkImpressionLog) else None)


def _clicks(log: SparkLog | SparkImpressionLog) -> SparkLog:
    return log.clicks if isinstance(log, SparkImpressionLog) else log


@contextmanager
def spark_engine(master: str | None) -> Iterator[SparkEngine]:
    """A `SparkEngine` on the session of `spark_session(master)`."""
    with spark_session(master) as spark:
        cache = Cache()
        try:
            yield SparkEngine(spark, cache)
        finally:
            cache.release()
