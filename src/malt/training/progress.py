"""What the trainer reports after every step, for whoever shows progress to a person."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainProgress:
    """Where a run stands after one optimiser step."""

    day: str
    """Name of the day being trained (e.g. `train-03`)."""
    day_index: int
    """0-based position of that day among the training days."""
    days: int
    step: int
    """Optimiser steps taken so far, over every day and every leg of the run."""
    total_steps: int
    samples_per_s: float
    """Training rows per second (all ranks) since this leg of the run started."""
    loss: float | None
    """The main view's loss at the last logged step (None before the first)."""
    eta_s: float | None
    """Seconds left at this leg's pace (None before it is known)."""

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


ProgressFn = Callable[[TrainProgress], None]
