"""Preparation throughput: MAC-layout parquet day files -> cached memory-mapped arrays.

    python -m benchmarks.bench_prepare [--data DIR] [--repeats 3] [--seed 0]

Without `--data` it simulates the `small` data set (about 1M clicks) into a temporary directory
first (not timed). Each timed run converts every day into a fresh cache directory; the best of
`--repeats` runs is reported, with the CPU time of the process, next to the cost of decoding
the same parquet files with pyarrow alone (the floor no converter can go under).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.report import update_section
from malt.data import prepare
from malt.data.cache import default_workers
from malt.data.layout import find_layout


def simulate_small(out: Path, seed: int) -> None:
    from malt.sources.simulate import simulate, size_config

    simulate(size_config("small", seed=seed), out)


def timed_prepare(root: Path, workers: int, repeats: int) -> tuple[float, float, int]:
    """Best wall time, its CPU time, and the rows of a cold-cache preparation."""
    best = (float("inf"), 0.0, 0)
    for _ in range(repeats):
        cache = Path(tempfile.mkdtemp(prefix="malt-bench-cache-"))
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            dataset = prepare(root, cache_dir=cache, workers=workers)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rows = sum(d.rows for d in dataset.days)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        best = min(best, (wall, cpu, rows))
    return best


def timed_cached(root: Path, repeats: int) -> float:
    """Best wall time of a preparation that finds every day cached."""
    cache = Path(tempfile.mkdtemp(prefix="malt-bench-cache-"))
    try:
        prepare(root, cache_dir=cache)
        times = []
        for _ in range(repeats):
            wall = time.perf_counter()
            prepare(root, cache_dir=cache)
            times.append(time.perf_counter() - wall)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return min(times)


def decode_cpu(root: Path, repeats: int) -> float:
    """Best CPU time to decode every day file with pyarrow, one thread, nothing else."""
    files = find_layout(root).days
    best = float("inf")
    for _ in range(repeats):
        cpu = time.thread_time()
        for path in files:
            pf = pq.ParquetFile(path)
            for group in range(pf.num_row_groups):
                pf.read_row_group(group, use_threads=False)
        best = min(best, time.thread_time() - cpu)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="a MAC-layout data set (default: simulate `small` first)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="simulation seed")
    args = parser.parse_args(argv)

    scratch = None
    root = args.data
    if root is None:
        scratch = Path(tempfile.mkdtemp(prefix="malt-bench-data-"))
        root = scratch / "small"
        print(f"simulating the small data set into {root} ...", flush=True)
        simulate_small(root, args.seed)
    load_before = os.getloadavg()[0]
    try:
        layout = find_layout(root)
        size_mb = sum(p.stat().st_size for p in layout.days) / 2**20
        workers = default_workers()
        results = {w: timed_prepare(root, w, args.repeats) for w in sorted({1, workers})}
        cached = timed_cached(root, args.repeats)
        floor = decode_cpu(root, args.repeats)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    rows = results[workers][2]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [f"Data: {'simulated `small`' if scratch else root} — {rows:,} rows in "
             f"{len(layout.days)} day files, {size_mb:.0f} MB of parquet. Best of "
             f"{args.repeats} runs, cold cache (every day converted).",
             "",
             "| run | wall s | rows/s | of the decode floor on its cores | CPU s |",
             "|---|---:|---:|---:|---:|"]
    for w, (wall, cpu, n) in results.items():
        # The floor: decoding alone on every core the run uses (`w` of them at most).
        share = (n / wall) / (min(w, os.cpu_count() or 1) * rows / floor)
        lines.append(f"| `prepare`, {w} worker{'s' if w > 1 else ''} | {wall:.2f} | "
                     f"{n / wall / 1e6:.2f}M | {share:.0%} | {cpu:.2f} |")
    lines.append(f"| `prepare` again (all days cached) | {cached:.3f} | — | — | — |")
    lines.append(f"| pyarrow decode alone, 1 thread (the floor) | — | "
                 f"{rows / floor / 1e6:.2f}M per core | — | {floor:.2f} |")
    lines += ["", f"Target: ≥ 1M rows/s. CPU time is the sum over threads: on an idle machine "
                  f"the wall time of the threaded run approaches CPU s / cores. Peak resident "
                  f"memory of the benchmark process: {peak_mb:,.0f} MB. Load average (1 min) "
                  f"at the start and the end of the runs: {load_before:.1f}, "
                  f"{os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} cores."]
    body = "\n".join(lines)
    print(body)
    command = "python -m benchmarks.bench_prepare" + (f" --data {args.data}" if args.data else "")
    update_section("prepare", command, body)


if __name__ == "__main__":
    main(sys.argv[1:])
