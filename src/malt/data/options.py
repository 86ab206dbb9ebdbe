"""What `malt prepare` and `malt data coverage` (besides its run settings) take: pandas-free,
so that their flags are generated without loading the data stack."""

from __future__ import annotations

from dataclasses import dataclass, field

from malt.data.as_of import parse_as_of
from malt.data.task import CoverageMask
from malt.typed_fields import NonNegativeInt, PositiveInt, validate


@dataclass(frozen=True)
class PrepareOptions:
    """Which data set `malt prepare` checks and caches, and the vocabs it may build first."""

    data: str
    """Data directory (train/, test/, vocabs/)."""
    schema: str | None = None
    """Schema file (.toml/.yaml); default MAC."""
    cache: str | None = None
    """Cache directory (default DATA/.malt_cache)."""
    rebuild: bool = False
    """Ignore and rebuild the cache."""
    workers: PositiveInt | None = None
    """Conversion threads (default: CPU cores, at most 4)."""
    build_vocabs: bool = False
    """Write vocabs/<field>.json for every field that has none, from the training days only."""
    min_count: PositiveInt = 1
    """Ids seen fewer times than this get no row of their own (the OOV row)."""
    vocab_held_out_days: NonNegativeInt = field(default=0, metadata={"metavar": "K"})
    """Leave the last K training days out of the vocab counts, the days a validation protocol
    (--validation-days K) scores."""
    as_of: str | None = None
    """Also report the training positives known at this time (unix seconds or an ISO-8601
    date-time), the labels `malt train --as-of` trains on."""

    def __post_init__(self) -> None:
        validate(self, "")
        if self.as_of is not None:
            parse_as_of(self.as_of)


@dataclass(frozen=True)
class CoverageOptions:
    """Which masks `malt data coverage` reports."""

    masks: list[CoverageMask] | None = None
    """Masks to report (default: adm, and reported when the data has it)."""

    def __post_init__(self) -> None:
        validate(self, "")
