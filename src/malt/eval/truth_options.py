"""What `malt data truth` takes: torch-free, so that its flags are generated without loading
torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from malt.typed_fields import validate

DaySplit = Literal["all", "train", "test"]


@dataclass(frozen=True)
class TruthOptions:
    """Which simulated data set's attribution labels to score against its true credit."""

    data: str
    """Data set written by `malt simulate` (it holds the truth columns)."""
    schema: str | None = None
    """Schema file (default: the data set's schema.toml, else MAC's)."""
    split: DaySplit = "all"
    """Days to score: all, the training days or the test days."""

    def __post_init__(self) -> None:
        validate(self, "")
