"""Checkpoints: model, optimiser, schedule, position in the data and every random state.

Written atomically (temporary file, then rename), so an interruption while saving leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from malt.outputs import atomic_write


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


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, *, model: torch.nn.Module, optimisation_state: dict,
                    state: TrainState, generator: torch.Generator, config: dict) -> None:
    payload = {"model": model.state_dict(), "optimisation": optimisation_state,
               "state": asdict(state), "rng": rng_state(), "generator": generator.get_state(),
               "config": config}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """The saved payload; `state` is returned as a `TrainState`."""
    payload = torch.load(path, map_location=map_location, weights_only=False)
    payload["state"] = TrainState(**payload["state"])
    return payload
