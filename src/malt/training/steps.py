"""How many optimiser steps one pass takes, and a batch size that gives a run enough of them.

One pass over a small data set at the MAC protocol's batch of 4096 rows is only a few dozen
optimiser steps, too few for Adam and the warm-up to train any model (on 105k rows, batch 4096
costs every model about 0.02 AUC against batch 1024). A run with fewer than `MIN_STEPS` steps
is warned about with the largest batch size that reaches them, and `batch_size = "auto"` picks
the largest of `AUTO_BATCH_SIZES` that does: at MAC scale that is 4096, the paper's batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from malt.data.batches import step_count

MIN_STEPS = 200
AUTO_BATCH_SIZES = (256, 512, 1024, 2048, 4096)
"""Batch sizes `auto` chooses from, smallest first."""


def pass_steps(day_rows: Sequence[int], batch_size: int) -> int:
    """Optimiser steps of one pass, day by day (each day ends with a partial step)."""
    return sum(step_count(rows, batch_size) for rows in day_rows)


def auto_batch_size(day_rows: Sequence[int]) -> int:
    """The largest of `AUTO_BATCH_SIZES` that gives at least `MIN_STEPS` steps (the smallest
    when none does)."""
    enough = [b for b in AUTO_BATCH_SIZES if pass_steps(day_rows, b) >= MIN_STEPS]
    return max(enough, default=AUTO_BATCH_SIZES[0])


def batch_size_for_steps(day_rows: Sequence[int], steps: int = MIN_STEPS) -> int | None:
    """The largest batch size whose pass takes at least `steps` steps (at most the largest
    day: a larger batch takes the same steps); None when even one row per step is fewer."""
    if sum(day_rows) < steps:
        return None
    lo, hi = 1, max(day_rows)  # pass_steps(lo) >= steps; the answer is in [lo, hi]
    while lo < hi:  # steps only fall as the batch grows, so bisect
        mid = (lo + hi + 1) // 2
        if pass_steps(day_rows, mid) >= steps:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class StepPlan:
    """One pass of a run: its batch size, rows, days and optimiser steps."""

    batch_size: int
    rows: int
    days: int
    steps: int
    suggested_batch_size: int | None
    """The largest batch size giving `MIN_STEPS` steps, when this plan has fewer."""

    @classmethod
    def of(cls, day_rows: Sequence[int], batch_size: int) -> StepPlan:
        steps = pass_steps(day_rows, batch_size)
        suggested = batch_size_for_steps(day_rows) if steps < MIN_STEPS else None
        return cls(batch_size, sum(day_rows), len(day_rows), steps, suggested)

    @property
    def too_few(self) -> bool:
        return self.steps < MIN_STEPS

    def describe(self) -> str:
        """One line, and a warning line when the pass is too short."""
        text = (f"one pass: {self.steps:,} optimiser steps of {self.batch_size:,} rows "
                f"({self.rows:,} rows over {self.days} training days)")
        if not self.too_few:
            return text
        fix = "the data has fewer rows than that" if self.suggested_batch_size is None else \
            f"--batch-size {self.suggested_batch_size} gives {MIN_STEPS}"
        return (f"{text}\nwarning: fewer than {MIN_STEPS} steps under-trains a model ({fix}; "
                f"--batch-size auto picks the largest of {', '.join(map(str, AUTO_BATCH_SIZES))}"
                f" that reaches {MIN_STEPS})")
