"""What `malt train` takes besides the run config: torch-free, so that its flags are generated
without loading torch."""

from __future__ import annotations

from dataclasses import dataclass

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
