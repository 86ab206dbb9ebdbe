"""Process-group set-up for `torchrun` and the few collectives the trainer needs.

`torchrun --nproc-per-node N -m malt train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; a plain
`malt train` runs as a world of one with no process group at all.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from malt.errors import ConfigError

WAIT_TIMEOUT = timedelta(hours=24)
"""How long ranks wait for others' long work (preparing a large data set) in `waiting_group`;
a rank that fails says so at once, this only bounds a wait for a rank that hangs."""


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def resolve_device(name: str) -> str:
    """`cuda` or `cpu` for a device option (`auto` picks CUDA when it is available)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available")
    return name


def launched_rank() -> int:
    """This process's global rank as torchrun set it (RANK); 0 without torchrun."""
    return int(os.environ.get("RANK", "0"))


def launched_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_world(device_type: str) -> World:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA), if any.

    On the ranks other than 0, malt's loggers then pass errors only: rank 0 speaks for the
    run (its warnings are about data, config or signals every rank shares).
    """
    size = launched_world_size()
    if size == 1:
        return World()
    world = World(rank=launched_rank(), size=size,
                  local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        # Left to the interpreter's teardown, the group's threads can outlive it: a rank then
        # ends by "terminate called without an active exception" (SIGABRT) after its work is
        # done, and torchrun reports the whole run failed.
        atexit.register(leave_process_group)
    if not world.is_main:
        logging.getLogger("malt").setLevel(logging.ERROR)
    return world


def leave_process_group() -> None:
    """Destroy this process's process groups, if it joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def device_for(device_type: str, world: World = World()) -> torch.device:
    """The device of this process: on CUDA, each rank takes its local GPU."""
    if device_type == "cuda":
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return torch.device("cpu")


def all_reduce_mean(tensors: list[torch.Tensor], world: World) -> None:
    """Average `tensors` in place over all ranks, as one flat buffer (one collective)."""
    if not world.distributed or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def gather_arrays(arrays: dict[str, np.ndarray], world: World) -> dict[str, np.ndarray] | None:
    """Concatenate every rank's arrays on rank 0 (others get None). Rows keep rank order."""
    if not world.distributed:
        return arrays
    parts: list[dict[str, np.ndarray]] | None = [None] * world.size if world.is_main else None
    dist.gather_object(arrays, parts, dst=0)
    if not world.is_main:
        return None
    return {k: np.concatenate([p[k] for p in parts]) for k in arrays}


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


@contextmanager
def waiting_group() -> Iterator[dist.ProcessGroup]:
    """A group of every rank whose collectives wait up to `WAIT_TIMEOUT` (the default
    group's timeout, 30 minutes with gloo and 10 with NCCL, is shorter than some data sets take
    to prepare)."""
    group = dist.new_group(timeout=WAIT_TIMEOUT)
    try:
        yield group
    finally:
        dist.destroy_process_group(group)


def failed_ranks(failed: bool, group: dist.ProcessGroup | None = None) -> list[int]:
    """The ranks that report `failed` (every rank calls it: one all-gather)."""
    flags: list[bool] = [False] * dist.get_world_size(group)
    dist.all_gather_object(flags, failed, group=group)
    return [rank for rank, flag in enumerate(flags) if flag]
