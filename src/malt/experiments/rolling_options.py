"""What `malt rolling` takes besides the run config: torch-free, so that its flags are
generated without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from malt.runs.config import InitNumeric
from malt.typed_fields import PositiveInt, validate

Chain = Literal["warm", "scratch"]
"""How a chain trains day d's model: warm-started from day d-1's run on day d alone, or from
scratch on every training day up to d."""
CHAINS: tuple[Chain, ...] = get_args(Chain)
RollingMode = Literal["warm", "scratch", "both"]
"""The chains a rolling evaluation trains: one of them, or both side by side."""


@dataclass(frozen=True)
class RollingOptions:
    """The period `malt rolling` walks, the chains it trains and where it writes them."""

    out: str
    """Directory of the daily runs, the table and the plot (run the same command again to
    resume: finished runs are reused)."""
    start: str
    """First day of the period: a training day's name (`train-03`, a date) or its index."""
    days: PositiveInt = 1
    """Days in the period; each day's model is scored on the training day after it, which the
    data must have."""
    mode: RollingMode = "both"
    """The chains to train: `warm` (each day warm-started from the day before, on that day
    only), `scratch` (each day trained from scratch on every day up to it) or `both`."""
    warm_optimiser: bool = False
    """Warm-started runs also take their parent's optimiser state (as `malt train
    --init-optimiser`)."""
    warm_min_count: PositiveInt = 1
    """Warm-started runs grow their vocabs by the new ids seen at least this many times in
    their day (as `malt train --init-min-count`)."""
    warm_numeric: InitNumeric = "parent"
    """Warm-started runs standardise numeric columns with their parent's statistics or refit
    them on their day (as `malt train --init-numeric`)."""
    as_of_origin: str | None = None
    """Train each run on the labels known at the end of its last training day: the start of
    the first training day on the labels' clock (unix seconds or an ISO-8601 date-time; 0 for
    `malt simulate`'s data), each day lasting 24 hours. None: every run sees the matured
    labels."""

    def __post_init__(self) -> None:
        validate(self, "")

    @property
    def chains(self) -> tuple[Chain, ...]:
        """The chains to train, warm first."""
        return CHAINS if self.mode == "both" else (self.mode,)
