"""What `malt predict` and `malt export` take: torch-free, so that their flags are generated
without loading torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from malt.deploy.choices import Engine, ExportFormat, check_engine_precision
from malt.runs.config import Device, Precision
from malt.typed_fields import PositiveInt, validate


@dataclass(frozen=True)
class PredictOptions:
    """What `malt predict` scores, with what, and where it writes."""

    run: str
    """Run directory written by `malt train`."""
    data: str
    """A parquet file, a directory of them, or a MAC-layout data set (its test days); label
    columns are not needed."""
    out: str
    """Parquet file to write."""
    keep: list[str] = field(default_factory=list, metadata={"repeat": True, "metavar": "COL"})
    """Copy these input columns to the output (`--keep id campaign`; repeatable)."""
    eval: bool = False
    """Also read the label columns and print the evaluation metrics."""
    engine: Engine = "torch"
    """torch: the eager model; onnx: the model exported to ONNX and run by ONNX Runtime
    (pip install 'malt[onnx]')."""
    batch_size: PositiveInt | None = None
    """Rows per model call (default 4096)."""
    vocabs: str | None = None
    """Vocabs to map raw ids with (a data set or a folder of <column>.json; default: the run's
    training data's)."""
    overwrite: bool = False
    """Replace --out if it exists."""
    uncalibrated: bool = False
    """Leave out the run's calibrators (`malt calibrate`): the model's own probabilities."""
    device: Device = "auto"
    """Where to score: `auto` takes CUDA when it is available."""
    precision: Precision = "fp32"
    """`bf16`: the model's forward pass under bfloat16 autocast (torch engine only); the
    probabilities written are float32 either way."""

    def __post_init__(self) -> None:
        validate(self, "")
        check_engine_precision(self.engine, self.precision)


@dataclass(frozen=True)
class ExportOptions:
    """Which run `malt export` writes, in which format, to which file."""

    run: str
    """Run directory written by `malt train`."""
    out: str
    """File to write (model.onnx / model.pt); the sidecar is FILE.json."""
    format: ExportFormat = "onnx"
    """onnx (pip install 'malt[onnx]') or torchscript."""
    vocabs: str | None = None
    """Vocabs the table sizes come from (default: the run's training data's)."""
    overwrite: bool = False
    """Replace FILE and its sidecar if they exist."""
    uncalibrated: bool = False
    """Leave the run's calibrators (`malt calibrate`) out of the exported graph."""

    def __post_init__(self) -> None:
        validate(self, "")
