"""The service's reading and conversion of requests. Conversion of the requests a batch
gathers: each request through a parquet file of its own (how `malt serve` converted them
before) against all of them as one table in memory (`malt.serve.convert`), per request, for
requests of 1 and 200 MAC-schema rows gathered 8 and 64 at a time (1: a lone request). Reading
a JSON body of 1 and 200 rows: Python's `json` against Arrow's JSON reader
(`malt.serve.requests`).

Requests are built as a JSON body's rows become a table (`pa.Table.from_pylist`) from random
unlabelled rows (`bench_predict.write_rows`); the figure is the CPU time of this thread (both
ways convert in the calling thread), the least of `--repeats` passes: on a machine shared with
other jobs, wall time counts the time slices the others take.

    python -m benchmarks.bench_serve_convert [--repeats 20] [--batches 1 8 64]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bench_predict import write_rows
from benchmarks.report import parse_arguments, publish
from malt.data.lookups import load_lookups
from malt.data.reader import DayConverter, RowGroup, array_shapes, check_columns, read_columns
from malt.data.schema import MAC
from malt.deploy.predict import table_source
from malt.serve import requests
from malt.serve.convert import RequestConverter


def each_through_parquet(converter: DayConverter, tables: list[pa.Table]) -> None:
    """The former path: every request written as parquet in memory, checked and converted."""
    for table in tables:
        source = table_source(table, "request")
        check_columns(MAC, source.file, "request", labels=False)
        arrays = {name: np.empty(shape, dtype) for name, (shape, dtype)
                  in array_shapes(MAC, table.num_rows, labels=False).items()}
        converter.convert(RowGroup(source.file, source.path, 0, 0), 0, "request", arrays)


def least_cpu_time(repeats: int, fn: Callable[[], object]) -> float:
    """The least CPU time (s) of this thread over `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    args = parse_arguments(parser, argv)
    lines = ["| rows a request | requests together | one parquet file each, µs a request | "
             "one table, µs a request | speed-up |", "|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_rows(Path(tmp), 20_000, 5_000, args.seed)
        lookups = load_lookups(MAC, Path(tmp) / "vocabs")
        rows = pq.read_table(path).to_pylist()
    former = DayConverter(MAC, lookups, labels=False)
    together = RequestConverter(MAC, lookups)
    rng = np.random.default_rng(args.seed)
    for size in (1, 200):
        for count in args.batches:
            starts = rng.integers(0, len(rows) - size, count)
            tables = [pa.Table.from_pylist(rows[s:s + size]) for s in starts]
            each = least_cpu_time(args.repeats, lambda: each_through_parquet(former, tables))
            one = least_cpu_time(args.repeats, lambda: together.convert(tables))
            print(f"{size:>3} rows x {count:>2}: {each / count * 1e6:8.0f} µs each, "
                  f"{one / count * 1e6:8.0f} µs as one table", flush=True)
            lines.append(f"| {size} | {count} | {each / count * 1e6:,.0f} | "
                         f"{one / count * 1e6:,.0f} | {each / one:.1f}x |")
    lines += ["", "| rows a JSON body | json, µs | Arrow's JSON reader, µs | speed-up |",
              "|---:|---:|---:|---:|"]
    columns = read_columns(MAC, labels=False)
    for size in (1, 200):
        body = json.dumps({"rows": rows[:size]}).encode()
        by = {}
        for reader, threshold in (("json", 1 << 30), ("arrow", 0)):
            requests.ARROW_JSON_BYTES = threshold
            by[reader] = least_cpu_time(
                args.repeats, lambda: requests.parse_request(body, columns, 10_000))
        print(f"{size:>3} rows of JSON: json {by['json'] * 1e6:,.0f} µs, arrow "
              f"{by['arrow'] * 1e6:,.0f} µs", flush=True)
        lines.append(f"| {size} | {by['json'] * 1e6:,.0f} | {by['arrow'] * 1e6:,.0f} | "
                     f"{by['json'] / by['arrow']:.1f}x |")
    body = (f"Each figure: the least CPU time of the converting thread over {args.repeats} "
            "passes over the same requests, divided by the requests; MAC schema (about 25 "
            "columns: fields, id and float sequences of 20), requests built as JSON rows "
            "become a table. The machine was shared with other jobs (CPU time leaves out the "
            "slices they take, not their use of the caches); load average at the end: "
            f"{os.getloadavg()[0]:.2f}.\n\n" + "\n".join(lines))
    publish("serving: reading and converting requests", "bench_serve_convert", argv, body,
            report=not args.no_report)


if __name__ == "__main__":
    main()
