"""What `malt train` (besides the run config) and `malt upgrade-run` take: torch-free, so that
their flags are generated without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from malt.typed_fields import validate


@dataclass(frozen=True)
class TrainOptions:
    """Where `malt train` writes its run, and whether it resumes or replaces one there."""

    out: str
    """Run directory to create (or resume)."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint."""
    overwrite: bool = False
    """Replace an existing run in --out."""

    def __post_init__(self) -> None:
        validate(self, "")


@dataclass(frozen=True)
class UpgradeRunOptions:
    """Which runs `malt upgrade-run` converts, and the user's word that they trust them."""

    paths: list[str] = field(metadata={"flag": "paths", "repeat": True, "metavar": "DIR"})
    """Run directories, or directories (such as a study) to search for runs."""
    trust_pickle: bool = False
    """Required: you trust where these runs came from (a pickle is read, through torch's
    restricted loader, to convert it)."""

    def __post_init__(self) -> None:
        validate(self, "")
