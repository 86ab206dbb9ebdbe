"""What an attribution engine provides to `pipeline.attribute_logs`, and the label statistics
every engine reports: the one module both engines (`memory`, `spark.pipeline`) build on, so
that neither imports the pipeline that chooses between them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from malt.data.schema import Schema
from malt.sources.attribution.config import AttributionConfig, LogFormat
from malt.sources.attribution.mac import WrittenDay


@dataclass(frozen=True)
class LabelStats:
    """The counts and label statistics of an attribution, as every engine reports them."""

    n_clicks: int
    n_conversions: int
    attributed_conversions: int
    pairs: int
    positive_ratio: dict[str, float]
    weight_sum: dict[str, float]
    n_impressions: int | None = None
    """Impression-level output: the impressions written (None: the rows are the clicks)."""

    @property
    def mean_journey(self) -> float:
        return self.pairs / self.attributed_conversions if self.attributed_conversions else 0.0


class Engine(Protocol):
    """What `attribute_logs` needs of an engine (`memory.MemoryEngine`,
    `spark.pipeline.SparkEngine`). `read` returns the log, of impressions when `impressions`
    names their table; `attribute` returns the engine's labelled clicks, which `write` (one row
    per click, or per impression) and `statistics` take."""

    def read(self, clicks: str | Path, conversions: str | Path | None, log_format: LogFormat,
             impressions: str | Path | None = None): ...

    def attribute(self, log, config: AttributionConfig): ...

    def write(self, stage: Path, log, labelled, schema: Schema) -> list[WrittenDay]: ...

    def statistics(self, log, labelled) -> LabelStats: ...
