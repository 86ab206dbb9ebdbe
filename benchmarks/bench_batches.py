"""Batch iteration throughput: slicing the cached arrays versus a per-sample `Dataset`.

    python -m benchmarks.bench_batches [--data DIR] [--batch-size 4096] [--seed 0]

Both sides read the same memory-mapped arrays of one prepared day and produce the same tensors
(sparse/seq as int64, dense_seq/weights/labels as float32, user, index). The baseline is the
usual PyTorch pattern: `Dataset.__getitem__` returns one row as a dict of tensors and a
`DataLoader` (default collate, `num_workers=0`) stacks `batch_size` of them. Without `--data`
it simulates the `small` data set first (not timed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from benchmarks.report import update_section
from malt.data import prepare
from malt.data.batches import DayBatches
from malt.data.cache import Day

_INT64 = ("sparse", "seq", "user")


class PerSampleDataset(TorchDataset):
    """One row at a time from the cached arrays, as a dict of tensors."""

    def __init__(self, day: Day):
        self.arrays = day.arrays()
        self.rows = day.rows

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = {name: torch.from_numpy(np.array(a[i], dtype=np.int64 if name in _INT64
                                               else a.dtype))
               for name, a in self.arrays.items()}
        row["labels"] = (row["weights"] > 0).to(torch.float32)
        row["index"] = torch.tensor(i)
        return row


def rows_per_second(batches, limit_rows: int) -> float:
    """Rows/s over the first batches adding up to at least `limit_rows` rows."""
    rows = 0
    start = time.perf_counter()
    for batch in batches:
        rows += len(batch["index"])
        if rows >= limit_rows:
            break
    return rows / (time.perf_counter() - start)


def best_rate(repeats: int, fn) -> float:
    return max(fn() for _ in range(repeats))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="a MAC-layout data set (default: simulate `small` first)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--baseline-rows", type=int, default=100_000,
                        help="rows the per-sample baseline is timed over")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    scratch = Path(tempfile.mkdtemp(prefix="malt-bench-batches-"))
    try:
        root = args.data
        if root is None:
            from malt.sources.simulate import simulate, size_config

            root = scratch / "small"
            print(f"simulating the small data set into {root} ...", flush=True)
            simulate(size_config("small", seed=args.seed), root)
        dataset = prepare(root, cache_dir=scratch / "cache")
        day = max(dataset.days, key=lambda d: d.rows)
        b = args.batch_size
        # Warm the page cache so that both sides read from memory.
        for array in day.arrays().values():
            np.asarray(array).sum()
        ours = {
            "sequential": best_rate(args.repeats, lambda: rows_per_second(
                DayBatches(day, b), day.rows)),
            "shuffled": best_rate(args.repeats, lambda: rows_per_second(
                DayBatches(day, b, shuffle=True, seed=args.seed), day.rows)),
        }
        per_sample = PerSampleDataset(day)
        generator = torch.Generator().manual_seed(args.seed)
        base = {
            "sequential": best_rate(1, lambda: rows_per_second(
                DataLoader(per_sample, batch_size=b, shuffle=False, num_workers=0),
                args.baseline_rows)),
            "shuffled": best_rate(1, lambda: rows_per_second(
                DataLoader(per_sample, batch_size=b, shuffle=True, num_workers=0,
                           generator=generator), args.baseline_rows)),
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    lines = [f"One day of {day.rows:,} rows ({'simulated `small`' if args.data is None else root}"
             f"), batch {b}, CPU tensors. `DayBatches` timed over the whole day (best of "
             f"{args.repeats}); the per-sample `Dataset` + `DataLoader` (default collate, "
             f"`num_workers=0`) over its first {min(args.baseline_rows, day.rows):,} rows.",
             "",
             "| order | `DayBatches` rows/s | per-sample `DataLoader` rows/s | speed-up |",
             "|---|---:|---:|---:|"]
    for order in ("sequential", "shuffled"):
        lines.append(f"| {order} | {ours[order] / 1e6:.2f}M | {base[order] / 1e3:.1f}k | "
                     f"{ours[order] / base[order]:.0f}× |")
    lines += ["", f"Target: ≥ 20× faster than the per-sample loader. Load average at the end: "
                  f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."]
    body = "\n".join(lines)
    print(body)
    command = "python -m benchmarks.bench_batches" + (f" --data {args.data}" if args.data else "")
    update_section("batches", command, body)


if __name__ == "__main__":
    main(sys.argv[1:])
