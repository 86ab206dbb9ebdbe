"""What `malt eval`, `malt calibrate` and `malt compare` take: torch-free, so that their flags
are generated without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from malt.errors import ConfigError
from malt.runs.config import DEFAULT_SEED, Device, Precision
from malt.runs.options import CalibrationMethod, CalibrationSlices
from malt.typed_fields import PositiveInt, Range, Seed, validate

DEFAULT_RESAMPLES = 1000
"""Bootstrap replicates of a comparison: a p-value resolution of 0.001, and interval ends that
vary between draw seeds by about 2 % of the interval's width (sd; GAUC on 3,000 users)."""


@dataclass(frozen=True)
class EvalOptions:
    """Which run `malt eval` reports, on which data, against which baseline."""

    run: str
    """Run directory written by `malt train`."""
    data: str | None = None
    """Score the run's model on this data set instead."""
    day: str | None = None
    """Score the run's model on this training day (its name, e.g. `train-09`, or its index) of
    --data (default: the run's own data set) instead of the evaluation days: the next day of a
    daily run."""
    baseline: str | None = None
    """Another run scored on the same rows (e.g. BASE): adds the paired differences with
    their intervals, and the gains by path complexity."""
    by: list[str] = field(default_factory=list,
                          metadata={"repeat": True, "metavar": "COLUMN|activity|complexity"})
    """Also show the gain over --baseline by slices (repeatable): a column of the data (e.g. an
    industry), `activity` (the user's clicks) or `complexity` (path complexity)."""
    complexity_labels: list[str] = field(default_factory=lambda: ["linear", "last"],
                                         metadata={"separator": ","})
    """The multi-touch and the single-touch label whose positives per user give the path
    complexity."""
    resamples: PositiveInt = DEFAULT_RESAMPLES
    """Bootstrap replicates of the intervals."""
    seed: Seed = DEFAULT_SEED
    """Seed of the bootstrap draws."""
    device: Device = "auto"
    """Where to score: `auto` takes CUDA when it is available."""
    precision: Precision = "fp32"
    """Score (with --data or --day) under bfloat16 autocast (`bf16`) or in float32."""

    def __post_init__(self) -> None:
        validate(self, "")
        if self.by and not self.baseline:
            raise ConfigError("--by slices the gain over a baseline: give --baseline RUN")
        if self.precision != "fp32" and self.data is None and self.day is None:
            raise ConfigError("--precision applies to scoring: give --data or --day (without "
                              "them the run's saved predictions are shown)")
        if len(self.complexity_labels) != 2:
            raise ConfigError(f"--complexity-labels takes two labels (multi-touch,single-touch), "
                              f"got {','.join(self.complexity_labels)}")


Metric = Literal["auc", "gauc", "logloss"]


@dataclass(frozen=True)
class CompareOptions:
    """Which runs `malt compare` pairs, on which view, and how its intervals are drawn."""

    runs: list[str] = field(metadata={"flag": "runs", "repeat": True, "metavar": "RUN"})
    """Run directories of the candidate, one per training seed."""
    baseline: list[str] = field(metadata={"metavar": "RUN"})
    """Run directories of the baseline (e.g. BASE), in the candidate's seed order; one run
    pairs with every candidate run."""
    view: str | None = None
    """Label view to compare on (default: the runs' main view)."""
    metrics: list[Metric] = field(default_factory=lambda: ["auc", "gauc", "logloss"],
                                  metadata={"separator": ","})
    """Metrics to compare, comma-separated."""
    resamples: PositiveInt = DEFAULT_RESAMPLES
    """Bootstrap replicates (the p-value's resolution is 1 / (resamples + 1))."""
    level: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.95
    """Coverage of the intervals."""
    seed: Seed = DEFAULT_SEED
    """Seed of the bootstrap draws."""

    def __post_init__(self) -> None:
        validate(self, "")
        if not self.baseline:
            raise ConfigError("give the baseline's run directories after --baseline")


@dataclass(frozen=True)
class CalibrateOptions:
    """Which run `malt calibrate` fits calibrators for, how, and on which days."""

    run: str
    """Run directory written by `malt train`."""
    method: CalibrationMethod = "isotonic"
    """isotonic: isotonic regression (scikit-learn; pip install 'malt[calibrate]'); platt:
    a logistic fit on the logit; temperature: the logit divided by one fitted T."""
    days: PositiveInt | None = None
    """Fit on the run's last N training days (default: its data.validation_days; held out from
    training when the run used --eval-split validation)."""
    by: CalibrationSlices | None = None
    """Also fit a calibrator per target action (data with a target-action column); a target
    action with fewer than 30 positives or negatives on those days takes the pooled one."""
    device: Device = "auto"
    """Where to score: `auto` takes CUDA when it is available."""

    def __post_init__(self) -> None:
        validate(self, "")
