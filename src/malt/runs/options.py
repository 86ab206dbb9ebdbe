"""What `malt train` (besides the run config), `malt upgrade-run` and `malt models` take:
torch-free, so that their flags are generated without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from malt.typed_fields import validate

CalibrationMethod = Literal["isotonic", "platt", "temperature"]
"""How a view's probabilities are recalibrated (`malt.runs.calibration`): isotonic regression
(a non-decreasing piecewise-linear map), Platt scaling (a logistic fit on the logit) or
temperature scaling (the logit divided by one fitted T)."""
CALIBRATION_METHODS = get_args(CalibrationMethod)
CalibrationSlices = Literal["target_action"]
"""What a calibration may also be fitted per slice of: the rows' target action."""

DEFAULT_VOCAB_ROWS = 1000
"""Embedding rows per table `malt models` counts when no --vocab-size says otherwise."""


@dataclass(frozen=True)
class TrainOptions:
    """Where `malt train` writes its run, and whether it resumes or replaces one there."""

    out: str
    """Run directory to create (or resume)."""
    resume: bool = False
    """Continue the run in --out from its last checkpoint."""
    overwrite: bool = False
    """Replace an existing run in --out."""
    calibrate: CalibrationMethod | None = None
    """After training, fit a calibrator per view on the held-out days, as `malt calibrate
    --method` does (isotonic needs pip install 'malt[calibrate]')."""

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


@dataclass(frozen=True)
class ModelsOptions:
    """The task, schema and table sizes `malt models` counts the registered models' parameters
    for."""

    main: str | None = None
    """Main view (default: the schema's first label, `last` for MAC)."""
    aux: list[str] = field(default_factory=list)
    """Auxiliary views: other labels and/or `cat`."""
    params: bool = False
    """Show dense and embedding parameter counts."""
    release_defaults: bool = False
    """Build the models from the public release's settings."""
    schema: str | None = None
    """Schema file (default: MAC)."""
    vocab_size: list[str] = field(default_factory=list,
                                  metadata={"repeat": True, "metavar": "[FIELD=]N"})
    """Embedding rows per table: N for every table or FIELD=N for one (repeatable; default
    1000)."""

    def __post_init__(self) -> None:
        validate(self, "")
