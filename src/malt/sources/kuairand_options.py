"""What `malt data kuairand-sim` takes: pandas-free, so that its flags are generated without
loading the data stack (`malt.sources.kuairand` builds the data set)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from malt.runs.config import DEFAULT_SEED
from malt.typed_fields import PositiveInt, Range, Seed, validate

KeepRate = Annotated[float, Range(0, 1, low_open=True)]
"""The keep-probability of all-zero rows, in (0, 1]."""


ReportedPer = Literal["video", "row"]
"""What draws the reported actions: each video once, or each row."""


@dataclass(frozen=True)
class KuaiRandOptions:
    """How the KuaiRand-Pure logs become a data set (KAML paper §4.2.2)."""

    seed: Seed = DEFAULT_SEED
    """Random seed of the negative sampling, the targets and the reported actions."""
    neg_keep_rate: KeepRate | Literal["auto"] = "auto"
    """Keep-probability of all-zero rows, in (0, 1], or `auto` (about `target_rows` rows in
    all)."""
    target_rows: PositiveInt = 900_000
    """Rows left by the `auto` keep-rate (900,000: the paper's size)."""
    sample_test: bool = True
    """Sample the all-zero rows of the test period too (--no-sample-test keeps every one)."""
    reported_per: ReportedPer = "video"
    """Draw the two extra reported actions per `video` or per `row`."""
    random_log: bool = False
    """Also read the random log (log_random_4_22_to_5_08_pure.csv)."""
    train_share: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.8
    """Share of the logged time that trains (the rest is the test period)."""

    def __post_init__(self) -> None:
        validate(self, "")


@dataclass(frozen=True)
class KuaiRandSimOptions:
    """Where `malt data kuairand-sim` reads the KuaiRand-Pure files and writes the data set."""

    raw: str
    """Directory holding the KuaiRand-Pure CSV files (or their data/ folder)."""
    out: str
    """Directory to write (MAC layout + schema.toml)."""
    overwrite: bool = False
    """Replace a data set in --out."""

    def __post_init__(self) -> None:
        validate(self, "")
