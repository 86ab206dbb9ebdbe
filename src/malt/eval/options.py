"""What `malt eval` takes: torch-free, so that its flags are generated without loading torch."""

from __future__ import annotations

from dataclasses import dataclass

from malt.runs.config import Device
from malt.typed_fields import validate


@dataclass(frozen=True)
class EvalOptions:
    """Which run `malt eval` reports, on which data, against which baseline."""

    run: str
    """Run directory written by `malt train`."""
    data: str | None = None
    """Score the run's model on this data set instead."""
    baseline: str | None = None
    """Another run scored on the same rows (e.g. BASE)."""
    device: Device = "auto"
    """Where to score: `auto` takes CUDA when it is available."""

    def __post_init__(self) -> None:
        validate(self, "")
