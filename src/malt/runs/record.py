"""The record of a finished run, saved as its `metrics.json` (`RunDir.save_metrics`): what
was evaluated, with which numbers, after how much training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from malt.metrics import ActionMetrics, ViewMetrics
from malt.typed_fields import build, validate


@dataclass(frozen=True)
class TrainStats:
    """What training took: days and rows trained, optimiser steps, seconds (every leg of a
    resumed run), processes."""

    days: int
    rows: int
    steps: int
    seconds: float
    world_size: int
    data_wait_seconds: float = 0.0
    """The part of `seconds` the loop waited for its next batch (0 in runs from before it was
    measured)."""

    def summary(self) -> str:
        """One line: rows, time, rate and the share of it spent waiting for data."""
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        wait = self.data_wait_seconds / self.seconds if self.seconds > 0 else 0.0
        return (f"trained {self.rows:,} rows in {self.steps:,} steps, {self.seconds:,.1f} s "
                f"({rate:,.0f} rows/s); waiting for data: {wait:.1%} of that time")


@dataclass(frozen=True)
class ParamCounts:
    dense: int
    embedding: int


@dataclass(frozen=True)
class RunMetrics:
    """The record of a finished run, saved as `metrics.json`."""

    main: str
    """The main view."""
    views: dict[str, ViewMetrics]
    """Metrics of every evaluated view (main and auxiliary attributions; never `cat`)."""
    eval_days: tuple[str, ...]
    eval_rows: int
    train: TrainStats
    params: ParamCounts
    target: dict[str, ActionMetrics] | None = None
    """Per target action and `all` (KAML protocol), when the data has a target-action column."""
    coverage: dict[str, dict[str, float]] | None = None
    """Share of training rows each action trains on under the mask (KAML Table 1)."""
    per_day: dict[str, dict[str, ViewMetrics]] = field(default_factory=dict)
    """Day -> view -> metrics when several days are evaluated (`views` pools them)."""
    truth: dict[str, dict[str, float | None]] | None = None
    """View -> its scores against the simulated truth (`malt.eval.truth`), when the evaluation
    days hold it; a metric undefined there is None. On impression logs, every impression."""
    impressions: dict[str, dict[str, float | None]] | None = None
    """View -> its entire-space scores on impression logs (`malt.eval.impressions`); the
    `views` metrics are then those of the clicked rows."""

    def __post_init__(self) -> None:
        validate(self, "metrics")

    @property
    def main_metrics(self) -> ViewMetrics:
        return self.views[self.main]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunMetrics:
        return build(cls, raw, "metrics")
