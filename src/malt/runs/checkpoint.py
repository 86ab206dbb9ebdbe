"""Checkpoints: model, optimiser, schedule, position in the data and every random state.

A checkpoint is a safetensors file (`malt.runs.tensor_tree`): tensors and plain values,
no pickle, so loading one cannot run code. Written atomically (temporary file, then rename), so
an interruption while saving leaves the previous checkpoint intact.

Runs of malt before this format hold `checkpoint.pt`, a pickle. Malt does not load it;
`convert_legacy_checkpoint` (the `malt upgrade-run` command) rewrites it once, on the user's
explicit say-so, through torch's restricted loader.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.torch_version import TorchVersion

from malt.errors import ConfigError
from malt.outputs import atomic_write
from malt.runs.tensor_tree import read_tree, write_tree
from malt.typed_fields import build

CHECKPOINT_KIND = "checkpoint"
LEGACY_NAME = "checkpoint.pt"
"""The pickled checkpoint of runs written before the safetensors format."""


@dataclass
class TrainState:
    """Where training stands: the day in progress, steps of it already taken, steps overall."""

    day: int = 0
    step_in_day: int = 0
    global_step: int = 0
    finished: bool = False
    seconds: float = 0.0
    """Training time of the run so far, over every leg (a resumed run adds to it)."""
    data_wait_seconds: float = 0.0
    """The part of `seconds` spent waiting for the next batch."""


@dataclass
class Checkpoint:
    """What a checkpoint file holds."""

    model: dict[str, torch.Tensor]
    """The model's state dict."""
    optimisation: dict[str, Any]
    """`Optimisation.state_dict()`."""
    state: TrainState
    rng: dict[str, Any]
    """Python's, numpy's, torch's (and CUDA's) global random states (see `rng_state`)."""
    generator: torch.Tensor
    """State of the trainer's own generator (row shuffle, PCGrad's task order)."""
    config: dict[str, Any]
    """The run's resolved config, so the file describes itself."""


def rng_state() -> dict[str, Any]:
    """Every global random state, as tensors and plain values."""
    return {"python": random.getstate(), "numpy": _numpy_state(np.random.get_state()),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state((numpy["algorithm"], numpy["keys"].numpy().astype(np.uint32),
                         numpy["position"], numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state(state: tuple) -> dict[str, Any]:
    """numpy's legacy random state (a tuple holding an array) as a table."""
    algorithm, keys, position, has_gauss, cached_gaussian = state
    return {"algorithm": algorithm, "keys": torch.from_numpy(np.asarray(keys, np.int64)),
            "position": int(position), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian)}


def save_checkpoint(path: Path, *, model: torch.nn.Module, optimisation_state: dict,
                    state: TrainState, generator: torch.Generator, config: dict) -> None:
    payload = {"model": model.state_dict(), "optimisation": optimisation_state,
               "state": asdict(state), "rng": rng_state(), "generator": generator.get_state(),
               "config": config}
    atomic_write(path, lambda tmp: write_tree(tmp, payload, kind=CHECKPOINT_KIND))


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> Checkpoint:
    """The checkpoint at `path`; a damaged file, a foreign one or a run's old pickled
    checkpoint raises a `ConfigError` saying what to do."""
    path = Path(path)
    if not path.is_file():
        refuse_legacy(path)
        raise ConfigError(f"{path.parent} has no checkpoint ({path.name})")
    tree = read_tree(path, kind=CHECKPOINT_KIND, device=map_location)
    try:
        fields = {name: tree[name] for name in
                  ("model", "optimisation", "state", "rng", "generator", "config")}
        state = build(TrainState, fields.pop("state"), "checkpoint state")
        checkpoint = Checkpoint(state=state, **fields)
        _check_types(checkpoint)
    except (KeyError, TypeError, ConfigError) as exc:
        raise ConfigError(f"{path} is damaged or not a malt checkpoint ({exc})") from None
    # Generators take their states as CPU tensors only: loaded to a GPU with the model, they
    # would make every resumed GPU run fail ("RNG state must be a torch.ByteTensor").
    checkpoint.rng = _on_cpu(checkpoint.rng)
    checkpoint.generator = checkpoint.generator.cpu()
    return checkpoint


def _on_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {key: _on_cpu(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_on_cpu(value) for value in tree)
    return tree


def refuse_legacy(path: Path) -> None:
    """Raise when the directory of the checkpoint `path` holds only a pickled one of an earlier
    malt, saying how to convert it."""
    legacy = Path(path).with_name(LEGACY_NAME)
    if legacy.is_file() and not Path(path).is_file():
        raise ConfigError(
            f"{legacy.parent} holds a checkpoint in the format of earlier malt versions "
            f"({legacy.name}, a Python pickle, which can run code when it is loaded), so malt "
            "does not load it. If you trust where this run came from, convert it once: "
            f"malt upgrade-run {legacy.parent} --trust-pickle")


def _check_types(checkpoint: Checkpoint) -> None:
    if not isinstance(checkpoint.model, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor)
            for k, v in checkpoint.model.items()):
        raise TypeError("its model is not a table of tensors")
    if not isinstance(checkpoint.generator, torch.Tensor):
        raise TypeError("its generator state is not a tensor")
    for name in ("optimisation", "rng", "config"):
        if not isinstance(getattr(checkpoint, name), dict):
            raise TypeError(f"its {name} is not a table")


def convert_legacy_checkpoint(run: Path, checkpoint: Path) -> None:
    """Rewrite the pickled `checkpoint.pt` of `run` as the safetensors `checkpoint`.

    The pickle is read by torch's restricted loader (tensors, containers, numbers and numpy's
    arrays only; never `weights_only=False`), which is safe from torch 2.6 on; older torch
    refuses."""
    legacy = run / LEGACY_NAME
    if TorchVersion(torch.__version__) < "2.6":
        raise ConfigError(f"converting {legacy} needs torch >= 2.6 (earlier versions' "
                          "restricted loader can be made to run code); this is "
                          f"{torch.__version__}")
    allowed = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), _numpy_reconstruct()]
    try:
        with torch.serialization.safe_globals(allowed):
            payload = torch.load(legacy, map_location="cpu", weights_only=True)
        payload["rng"]["numpy"] = _numpy_state(payload["rng"]["numpy"])
        build(TrainState, payload["state"], "checkpoint state")
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError, AttributeError, KeyError,
            IndexError, TypeError, ValueError, ConfigError) as exc:
        # A bad state is named with its file too: upgrade-run converts many runs at once.
        raise ConfigError(f"{legacy} cannot be converted: {_reason(exc)}") from None
    atomic_write(checkpoint, lambda tmp: write_tree(tmp, payload, kind=CHECKPOINT_KIND))


def _reason(error: Exception) -> str:
    """The line of a loading error that says what was refused (torch's weights-only errors
    bury it among advice), else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    refused = [line for line in lines if "WeightsUnpickler error" in line]
    return (refused or lines or [type(error).__name__])[0]


def _numpy_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct
