"""What a user picks from to deploy a run: the export formats and the scoring engines.

Torch-free, so that the command line lists them without loading torch.
"""

from __future__ import annotations

from typing import Literal, get_args

ExportFormat = Literal["onnx", "torchscript"]
EXPORT_FORMATS = get_args(ExportFormat)
Engine = Literal["torch", "onnx"]
"""What computes the predictions: the eager model, or the model exported to ONNX and run by
ONNX Runtime."""
ENGINES = get_args(Engine)
