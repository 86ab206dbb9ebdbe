"""What `malt serve` takes: torch-free, so that its flags are generated without loading torch
or the web stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from malt.deploy.choices import Engine, check_engine_precision
from malt.runs.config import Device, Precision
from malt.typed_fields import Between, NonNegativeFloat, PositiveInt, validate

Port = Annotated[int, Between(1, 65535)]


@dataclass(frozen=True)
class ServeOptions:
    """Which run `malt serve` scores with, where it listens and how it gathers requests."""

    run: str
    """Run directory written by `malt train`."""
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0: every interface)."""
    port: Port = 8000
    """Port to listen on."""
    engine: Engine = "torch"
    """torch: the eager model; onnx: the model exported to ONNX and run by ONNX Runtime
    (pip install 'malt[onnx]')."""
    vocabs: str | None = None
    """Vocabs to map raw ids with (a data set or a folder of <column>.json; default: the run's
    training data's)."""
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
        check_engine_precision(self.engine, self.precision)
