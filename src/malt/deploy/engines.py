"""What computes the predictions of converted rows: the eager model or ONNX Runtime."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from malt.deploy.choices import ENGINES, check_engine_precision
from malt.deploy.export import to_onnx
from malt.deploy.serving import INPUT_DTYPES, ServingModule
from malt.errors import ConfigError
from malt.precision import autocast, check_precision
from malt.training.distributed import device_for, resolve_device


class ScoringEngine(Protocol):
    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Serving inputs (numpy, any integer/float dtype) -> probabilities [B, V]."""


def feed(inputs: dict[str, np.ndarray], names: tuple[str, ...]) -> list[np.ndarray]:
    """The named inputs in their serving dtypes (a copy only where the dtype differs)."""
    return [np.ascontiguousarray(inputs[n], dtype=INPUT_DTYPES[n]) for n in names]


class TorchEngine:
    """The eager model on `device` (CPU or CUDA), its forward pass in `precision`."""

    def __init__(self, serving: ServingModule, device: torch.device, precision: str = "fp32"):
        self.serving = serving.to(device).eval()
        self.device, self.precision = device, precision

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode(), autocast(self.precision, self.device):
            tensors = [torch.from_numpy(a).to(self.device, non_blocking=True)
                       for a in feed(inputs, self.serving.input_names)]
            return torch.stack(self.serving(*tensors), dim=1).float().cpu().numpy()


class OnnxEngine:
    """An ONNX model (`model`: its bytes) run by ONNX Runtime, fed the inputs `names` (the CUDA
    provider on a CUDA device when onnxruntime-gpu is installed)."""

    def __init__(self, model: bytes, names: tuple[str, ...], device: torch.device):
        try:
            import onnxruntime
        except ImportError as exc:
            raise ConfigError("the onnx engine needs onnxruntime: pip install 'malt[onnx]'"
                              ) from exc
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise ConfigError("this onnxruntime has no CUDA provider (install "
                                  "onnxruntime-gpu) or use --engine torch on CUDA")
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(model, options, providers=providers)
        self.names = names

    @classmethod
    def of(cls, serving: ServingModule, device: torch.device) -> OnnxEngine:
        """The serving module exported to ONNX in memory."""
        return cls(to_onnx(serving.cpu(), "{}"), serving.input_names, device)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        outputs = self.session.run(None, dict(zip(self.names, feed(inputs, self.names))))
        return np.stack(outputs, axis=1)


def scoring_device(engine: str, requested: str) -> torch.device:
    """The device an engine scores on for a `--device` choice: `auto` is CUDA when the engine
    can use it (for ONNX Runtime, when its CUDA provider is installed), else the CPU."""
    if requested == "auto" and engine == "onnx":
        try:
            import onnxruntime
        except ImportError:
            return torch.device("cpu")  # the engine itself says what to install
        usable = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        return torch.device("cuda" if usable and torch.cuda.is_available() else "cpu")
    return device_for(resolve_device(requested))


def make_engine(name: str, serving: ServingModule, device: torch.device,
                precision: str = "fp32") -> ScoringEngine:
    """The engine `name` scoring `serving` on `device`; `precision` `bf16` is the torch
    engine's (ONNX Runtime runs the exported float32 graph)."""
    if name not in ENGINES:
        raise ConfigError(f"unknown engine '{name}', expected one of {list(ENGINES)}")
    check_engine_precision(name, precision)
    check_precision(precision, device)
    return TorchEngine(serving, device, precision) if name == "torch" \
        else OnnxEngine.of(serving, device)
