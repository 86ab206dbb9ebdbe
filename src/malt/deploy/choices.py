"""What a user picks from to deploy a run: the export formats and the scoring engines.

Torch-free, so that the command line lists them without loading torch.
"""

from __future__ import annotations

from typing import Literal, get_args

from malt.errors import ConfigError

ExportFormat = Literal["onnx", "torchscript"]
EXPORT_FORMATS = get_args(ExportFormat)
Engine = Literal["torch", "onnx"]
"""What computes the predictions: the eager model, or the model exported to ONNX and run by
ONNX Runtime."""
ENGINES = get_args(Engine)


def check_engine_precision(engine: str, precision: str) -> None:
    """Refuse `bf16` with an engine other than torch: ONNX Runtime runs the exported float32
    graph, so it would score in float32 whatever was asked."""
    if precision != "fp32" and engine != "torch":
        raise ConfigError(f"--precision {precision} scores with the torch engine; the "
                          f"{engine} engine runs the float32 graph")
