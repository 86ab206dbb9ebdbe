"""Batches as slices of the cached contiguous arrays: no per-sample `__getitem__`, no collate.

A batch is a plain dict of tensors keyed by role (B rows, shapes as in `malt.data.reader`):
    sparse [B, F] int64, seq [B, S, L] int64, dense_seq [B, C, L] float32,
    weights [B, V] float32 (raw attribution weights), labels [B, V] float32 (weights > 0),
    bags [B, K, M] int64 (table rows of each bag's ids, row 0 past its length; M is the longest
    bag of the batch, at least 1), bag_lengths [B, K] int64,
    user [B] int64, index [B] int64 (row within its day), step_rows [] int64 (rows of the whole
    step across all ranks), plus campaign / target_action [B] int64 and true_weights [B, V]
    when the schema declares them.

With `as_of` (unix seconds) the weights are those known at that time (`as_of.labels_as_of`):
a label whose credit became known later is 0. The cached `known_at` and `click_time` arrays
never enter a batch; when the day holds click times, a batch as of T carries what a delay model
needs instead (`delay_times`), in seconds on the data's clock:
    elapsed [B] float32      T − click time, clipped at 0: how long the row has been waiting
    delay   [B, V] float32   known-at − click time where the label is known at T, else 0
(`labels` > 0 says where a delay is observed).

`batch_size` is the global batch: with `world_size` ranks each rank receives its part of every
step (sizes differ by at most one row), so a distributed run sees the same steps as one process.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from malt.data.as_of import check_days_as_of, labels_as_of
from malt.data.cache import Day

Batch = dict[str, torch.Tensor]

_INT64_KEYS = ("sparse", "seq", "user", "campaign", "target_action", "bags", "bag_lengths")
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.int64): torch.int64,
                 np.dtype(np.int32): torch.int32}


def step_count(rows: int, batch_size: int) -> int:
    """Steps needed for one pass over `rows` rows."""
    return -(-rows // batch_size)


def rank_slice(rows: int, step: int, batch_size: int, rank: int, world_size: int
               ) -> tuple[int, int]:
    """[start, stop) positions of `rank`'s part of global step `step` in a day of `rows` rows."""
    start = step * batch_size
    size = min(batch_size, rows - start)
    base, extra = divmod(size, world_size)
    lo = start + rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def day_order(rows: int, shuffle: bool, seed: int, day_index: int) -> np.ndarray | None:
    """Row permutation of one day (None = file order). Same on every rank for the same seed."""
    if not shuffle:
        return None
    return np.random.default_rng([seed, day_index]).permutation(rows)


class DayBatches:
    """Iterates the batches of one day for one rank.

    Args:
        day: a cached day.
        batch_size: rows per global step.
        shuffle: permute rows within the day (seeded by `seed` and `day_index`).
        rank: this process's rank, whose share of every step it reads.
        world_size: the number of processes the steps are shared among.
        device: where batches go; on CUDA they are pinned and copied asynchronously.
        as_of: unix seconds: the weights are those known then (None: the matured weights).
    """

    def __init__(self, day: Day, batch_size: int = 4096, *, shuffle: bool = False, seed: int = 0,
                 day_index: int = 0, rank: int = 0, world_size: int = 1,
                 device: str | torch.device = "cpu", as_of: float | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        check_days_as_of([day], as_of)
        self.as_of = as_of
        self.day = day
        self.batch_size = batch_size
        self.order = day_order(day.rows, shuffle, seed, day_index)
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self._pin = self.device.type == "cuda"

    def __len__(self) -> int:
        return step_count(self.day.rows, self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return self.from_step(0)

    def from_step(self, first_step: int) -> Iterator[Batch]:
        """Batches from step `first_step` on (used to resume inside a day)."""
        arrays = self.day.arrays()
        known_at = arrays.pop("known_at", None)
        click_time = arrays.pop("click_time", None)
        rows = self.day.rows
        for step in range(first_step, len(self)):
            lo, hi = rank_slice(rows, step, self.batch_size, self.rank, self.world_size)
            if self.order is None:
                index = np.arange(lo, hi)
                take: slice | np.ndarray = slice(lo, hi)
            else:
                # Sorted positions read the memory map in order; row order inside a batch
                # does not change a mean loss.
                index = take = np.sort(self.order[lo:hi])
            step_rows = min(self.batch_size, rows - step * self.batch_size)
            yield self._to_batch(arrays, take, index, step_rows, known_at, click_time)

    def _to_batch(self, arrays: dict[str, np.ndarray], take: slice | np.ndarray,
                  index: np.ndarray, step_rows: int, known_at: np.ndarray | None,
                  click_time: np.ndarray | None) -> Batch:
        batch: Batch = {}
        if self.as_of is not None and click_time is not None and known_at is not None:
            elapsed, delay = delay_times(_rows(click_time, take), _rows(known_at, take),
                                         self.as_of)
            batch["elapsed"], batch["delay"] = torch.from_numpy(elapsed), torch.from_numpy(delay)
        bag_lengths = _rows(arrays["bag_lengths"], take) if "bag_lengths" in arrays else None
        for name, array in arrays.items():
            rows = bag_lengths if name == "bag_lengths" else _rows(array, take)
            if name == "bags":
                # The cache pads every bag to the schema's largest max_length; a batch keeps
                # only the positions its longest bag fills. Cut after the gather: numpy
                # gathers whole rows about 20 times faster than rows of a strided view.
                rows = rows[:, :, :longest_bag(bag_lengths)]
            if name == "weights" and self.as_of is not None:
                rows = labels_as_of(rows, _rows(known_at, take), self.as_of)
            dtype = torch.int64 if name in _INT64_KEYS else _TORCH_DTYPES[array.dtype]
            # Rows go straight from the memory map into the tensor (pinned when bound for
            # CUDA): one copy, with the int32 -> int64 widening folded in.
            tensor = torch.empty((len(index), *rows.shape[1:]), dtype=dtype,
                                 pin_memory=self._pin)
            tensor.numpy()[...] = rows
            batch[name] = tensor
        batch["index"] = torch.empty(len(index), dtype=torch.int64, pin_memory=self._pin)
        batch["index"].numpy()[:] = index
        batch["step_rows"] = torch.tensor(step_rows, dtype=torch.int64)
        if self.device.type != "cpu":
            batch = {k: v.to(self.device, non_blocking=self._pin) for k, v in batch.items()}
        # Derived on the device: the 0/1 labels need not cross the bus.
        batch["labels"] = (batch["weights"] > 0).to(torch.float32)
        return batch


def delay_times(click_time: np.ndarray, known_at: np.ndarray, as_of: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(elapsed, delay) as of `as_of`: click times [B] and known-at times [B, V] (NaN: never
    credited) -> float32 [B] `as_of − click time` clipped at 0, and float32 [B, V]
    `known-at − click time` where the label is known at `as_of`, 0 elsewhere."""
    elapsed = np.maximum(as_of - click_time, 0.0).astype(np.float32)
    known = known_at <= as_of  # NaN compares False
    delay = np.where(known, known_at - click_time[:, None], 0.0).astype(np.float32)
    return elapsed, delay


def longest_bag(lengths: np.ndarray) -> int:
    """Positions a batch's bags need, from their lengths [B, K]: the longest, at least 1 (a
    batch of empty bags keeps one padded position, so that every tensor has one)."""
    return max(int(lengths.max(initial=0)), 1)


def _rows(array: np.ndarray, take: slice | np.ndarray) -> np.ndarray:
    """The rows `take` of a memory-mapped day array."""
    return array[take] if isinstance(take, slice) else np.take(array, take, axis=0)
