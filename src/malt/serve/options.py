"""What `malt serve` takes: torch-free, so that its flags are generated without loading torch
or the web stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from malt.deploy.choices import Engine, check_engine_precision
from malt.errors import ConfigError
from malt.runs.config import Device, Precision
from malt.typed_fields import Between, NonNegativeFloat, PositiveInt, validate

Port = Annotated[int, Between(1, 65535)]


@dataclass(frozen=True)
class ServeOptions:
    """Which model `malt serve` scores with (a run, or an ONNX file of `malt export`), where
    it listens and how it gathers requests."""

    run: str | None = None
    """Run directory written by `malt train` (or give --export)."""
    export: str | None = None
    """ONNX file written by `malt export`, its sidecar FILE.json beside it (or give --run)."""
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0: every interface)."""
    port: Port = 8000
    """Port to listen on."""
    engine: Engine | None = None
    """torch (the default for a run): the eager model; onnx: the model exported to ONNX and
    run by ONNX Runtime (pip install 'malt[onnx]'), as an --export always is."""
    vocabs: str | None = None
    """Vocabs to map raw ids with (a data set or a folder of <column>.json; default: the run's
    training data's, for an export that of the run it was exported from)."""
    max_rows: PositiveInt = 10_000
    """Most rows one request may hold; a larger one is refused (413)."""
    batch_rows: PositiveInt = 4096
    """Most rows of the concurrent requests gathered into one model call."""
    batch_wait_ms: NonNegativeFloat = 2.0
    """How long the first waiting request waits for others to join its model call."""
    device: Device = "auto"
    """Where to score: `auto` takes CUDA when it is available."""
    precision: Precision = "fp32"
    """`bf16`: the model's forward pass under bfloat16 autocast (torch engine only)."""

    def __post_init__(self) -> None:
        validate(self, "")
        if (self.run is None) == (self.export is None):
            raise ConfigError("give the model to serve: --run RUN or --export FILE (one)")
        if self.export is not None and self.engine == "torch":
            raise ConfigError("an exported file is run by ONNX Runtime: --engine onnx (or "
                              "leave it out), or serve the run with --run for torch")
        check_engine_precision(self.engine_name, self.precision)

    @property
    def engine_name(self) -> Engine:
        """The engine that scores: the one asked for, else torch for a run, onnx for an
        export."""
        return self.engine or ("torch" if self.export is None else "onnx")
