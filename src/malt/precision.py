"""Mixed precision: bfloat16 autocast around the forward pass (`--precision bf16`).

Under `bf16` the matrix products and the layers autocast lists run in bfloat16 (8 bits of
mantissa), on the CPU as on CUDA; the parameters, the optimiser's state, the losses and the
returned probabilities stay float32. `check_precision` runs where the device is resolved,
before anything is trained, scored or written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

import torch

from malt.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
"""The precisions a run or a scoring pass takes (`malt.runs.config.Precision`, the typed
option, spells them for the torch-free command line); `fp32` is the default."""

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""/proc/cpuinfo flags of the instructions that compute bfloat16 products natively."""


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in: bfloat16 autocast on `device`'s type under `bf16`,
    nothing under `fp32`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def as_float32(value: Any) -> Any:
    """`value` (a tensor, or a dataclass, dict, list or tuple holding tensors) with its floating
    tensors in float32: the losses of a bf16 forward pass are computed in float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: as_float32(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, dict):
        return {k: as_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(as_float32(v) for v in value)
    return value


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The CPU's feature flags as Linux lists them; None where /proc/cpuinfo is not readable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def cpu_computes_bf16(flags: frozenset[str] | None) -> bool | None:
    """Whether a CPU with `flags` has bfloat16 instructions (None: its flags are unknown)."""
    return None if flags is None else any(f in flags for f in BF16_CPU_FLAGS)


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse what `precision` cannot do on `device` before anything runs: an unknown
    precision, or `bf16` on a GPU without bfloat16 (torch's autocast would silently run
    float32 there). On a CPU without bfloat16 instructions `bf16` is emulated, the same
    numbers only slower: warned about once per process, not refused."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}', expected one of "
                          f"{list(PRECISIONS)}")
    if precision == "fp32":
        return
    device_type = torch.device(device).type
    if device_type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ConfigError("--precision bf16: this GPU has no bfloat16 arithmetic; use "
                          "--precision fp32")
    if device_type == "cpu":
        _warn_once(cpu_computes_bf16(cpu_flags()))


@functools.cache
def _warn_once(native: bool | None) -> None:
    if native is True:
        return
    why = "has no bfloat16 instructions (AVX512_BF16 or AMX)" if native is False else \
        "may lack bfloat16 instructions (its flags could not be read)"
    log.warning("--precision bf16: this CPU %s, so bfloat16 is emulated and likely slower than "
                "float32 (--precision fp32)", why)
