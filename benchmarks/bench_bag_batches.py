"""Batches with bags and ragged sequences at MAC-like sizes: speed and memory against floors.

    python -m benchmarks.bench_bag_batches [--rows 1000000] [--batch-size 4096] [--seed 2026]

Writes one training day shaped as MAC (6 user, 6 ad and 4 context fields; 3 id sequences
sharing three ad tables) but with ragged sequences of their own lengths (kept 20, 10 and 5
items; each 0 to 60 items a row, 12 on average, drawn apart) and two bags (user interests: 0 to
24 ids, max_length 16; ad keywords: 0 to 12, max_length 8), with ids drawn from MAC-scale
ranges (`CARDINALITY`), prepares it and measures, in this process:

- converting the decoded day (`DayConverter.convert`: lookups, cutting and padding every
  sequence to its own length, bags) against the floor of copying its output arrays;
- `DayBatches` rows/s, in file order and shuffled, against the floor of copying the same
  batches' cached bytes (the rows' slices of every array, no widening to int64, no trimming);
- the cache's and a batch's bytes per row, and how much of the bags and sequences is padding;
- pooling the bags of one batch (`malt.layers.embedding.pooled_bag`, the padded gather and
  batched product that exports to ONNX) forward and backward, against `nn.EmbeddingBag` over
  the same ids as offsets and values (torch's fused kernel) as the floor.
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
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from benchmarks.report import best_of, invocation, update_section
from malt.api import prepare
from malt.data.batches import DayBatches
from malt.data.cache import Dataset, Day
from malt.data.layout import write_day
from malt.data.lookups import load_lookups
from malt.data.reader import DayConverter, array_shapes
from malt.layers.embedding import pooled_bag

CARDINALITY = {"user_feat0": 800_000, "ad_feat0": 9_600_000, "ad_feat1": 500_000,
               "ad_feat2": 2_400_000, "interests": 100_000, "keywords": 1_000_000}
"""Ids of the large columns, MAC's for its tables (`benchmarks.bench_scale.MAC_TABLES`); a
sequence draws from the table it shares; every other field from `OTHER_IDS`."""
OTHER_IDS = 1_000
SCHEMA = """\
name = "mac-bags"
user_column = "user"
labels = ["last", "first"]
ragged_sequences = true
sequence_length = 20

[fields]
user = ["user_feat0", "user_feat1", "user_feat2", "user_feat3", "user_feat4", "user_feat5"]
ad = ["ad_feat0", "ad_feat1", "ad_feat2", "ad_feat3", "ad_feat4", "ad_feat5"]
context = ["context_feat0", "context_feat1", "context_feat2", "context_feat3"]

[id_sequences]
ad_feat0_seq = "ad_feat0"
ad_feat1_seq = { shares = "ad_feat1", length = 10 }
ad_feat2_seq = { shares = "ad_feat2", length = 5 }

[bags]
interests = { group = "user", pooling = "sum", max_length = 16 }
keywords = { group = "ad", pooling = "mean", max_length = 8 }
"""
BAGS = {"interests": (6.0, 24), "keywords": (3.0, 12)}
"""Bag -> (mean ids a row, most ids a row) of the written lists."""


def list_column(rng: np.random.Generator, lengths: np.ndarray, ids: int) -> pa.ListArray:
    """Rows of `lengths` [N] random ids below `ids`."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets),
                                    pa.array(rng.integers(0, ids, int(offsets[-1]))))


def write_data(root: Path, rows: int, seed: int) -> None:
    """One training day and a small test day of random ids (the labels do not matter here)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", rows), ("test", 1000)):
        table = {"user": rng.integers(0, rows, n)}
        for group, count in (("user", 6), ("ad", 6), ("context", 4)):
            table |= {f"{group}_feat{i}": rng.integers(
                0, CARDINALITY.get(f"{group}_feat{i}", OTHER_IDS), n) for i in range(count)}
        table |= {f"ad_feat{i}_seq": list_column(rng, np.minimum(rng.geometric(1 / 13, n) - 1,
                                                                  60),
                                                 CARDINALITY[f"ad_feat{i}"])
                  for i in range(3)}
        table |= {name: list_column(rng, np.minimum(rng.poisson(mean, n), most),
                                    CARDINALITY[name])
                  for name, (mean, most) in BAGS.items()}
        table |= {"last": (rng.random(n) < 0.05).astype(np.float32),
                  "first": (rng.random(n) < 0.05).astype(np.float32)}
        write_day(root / split / "day0.parquet", pa.table(table))
    (root / "schema.toml").write_text(SCHEMA)


def rows_per_second(batches) -> float:
    """Rows/s of one pass over `batches`."""
    start, rows = time.perf_counter(), 0
    for batch in batches:
        rows += len(batch["index"])
    return rows / (time.perf_counter() - start)


def copy_floor(day: Day, batch_size: int, order: np.ndarray | None) -> float:
    """Rows/s of copying each batch's rows of every cached array as they are stored."""
    arrays = day.arrays()
    start = time.perf_counter()
    for lo in range(0, day.rows, batch_size):
        take = slice(lo, lo + batch_size) if order is None else np.sort(order[lo:lo + batch_size])
        for array in arrays.values():
            np.array(array[take]) if order is None else np.take(array, take, axis=0)
    return day.rows / (time.perf_counter() - start)


def conversion_rates(dataset: Dataset, repeats: int) -> tuple[float, float]:
    """(rows/s of converting the decoded training day, rows/s of copying its output arrays),
    best of `repeats`, one thread of numpy and Arrow work as a prepare worker runs."""
    day = dataset.train[0]
    table = pq.read_table(day.source)
    converter = DayConverter(dataset.schema, load_lookups(dataset.schema,
                                                          dataset.root / "vocabs"))
    out = {name: np.empty(shape, dtype)
           for name, (shape, dtype) in array_shapes(dataset.schema, table.num_rows).items()}
    converter.convert(table, 0, str(day.source), out)
    done = {name: array.copy() for name, array in out.items()}

    def copy() -> None:
        for name, array in out.items():
            np.copyto(array, done[name])

    convert = best_of(repeats, lambda: converter.convert(table, 0, str(day.source), out))[0]
    return table.num_rows / convert, table.num_rows / best_of(repeats, copy)[0]


def pooling_times(batch: dict[str, torch.Tensor], dim: int, repeats: int
                  ) -> tuple[float, float]:
    """(seconds of `pooled_bag`, seconds of `nn.EmbeddingBag`) to pool and back-propagate
    every bag of `batch` into `dim`-wide tables, best of `repeats`."""
    bags, lengths = batch["bags"], batch["bag_lengths"]
    rows = [CARDINALITY[name] + 1 for name in BAGS]
    tables = [nn.Embedding(n, dim) for n in rows]
    fused = [nn.EmbeddingBag(n, dim, mode="sum") for n in rows]
    keep = torch.arange(bags.shape[2]) < lengths.unsqueeze(2)                  # [B, K, M]
    flat = [(bags[:, k][keep[:, k]], torch.cumsum(lengths[:, k], 0) - lengths[:, k])
            for k in range(bags.shape[1])]

    def ours() -> None:
        sum(pooled_bag(t, bags[:, k], lengths[:, k], False).sum()
            for k, t in enumerate(tables)).backward()

    def floor() -> None:
        sum(f(values, offsets).sum() for f, (values, offsets) in zip(fused, flat)).backward()

    return best_of(repeats, ours)[0], best_of(repeats, floor)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="rows of the day (a MAC day holds about 3.8M)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--embed-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    b = args.batch_size
    scratch = Path(tempfile.mkdtemp(prefix="malt-bench-bags-"))
    try:
        write_data(scratch, args.rows, args.seed)
        dataset = prepare(scratch, build_vocabs=True)
        day = dataset.train[0]
        arrays = day.arrays()
        for array in arrays.values():  # page cache warm: both sides read memory
            np.asarray(array).sum()
        order = np.random.default_rng(args.seed).permutation(day.rows)
        rates = {
            "file order": (best_of(args.repeats, lambda: rows_per_second(DayBatches(day, b)))[1],
                           best_of(args.repeats, lambda: copy_floor(day, b, None))[1]),
            "shuffled": (best_of(args.repeats, lambda: rows_per_second(
                DayBatches(day, b, shuffle=True, seed=args.seed)))[1],
                best_of(args.repeats, lambda: copy_floor(day, b, order))[1]),
        }
        batches = list(DayBatches(day, b))
        stored = {name: array.nbytes / day.rows for name, array in arrays.items()}
        batch_bytes = np.mean([sum(t.nbytes for t in x.values()) / len(x["index"])
                               for x in batches])
        bag_fill = arrays["bag_lengths"].sum() / arrays["bags"][:, :, 0].size
        bag_cells = arrays["bags"].shape[2]
        trimmed = np.mean([x["bags"].shape[2] for x in batches])
        seq_fill = {s.name: (arrays["seq"][:, j, :s.length]
                             != dataset.vocab.sequence_pad[s.name]).mean()
                    for j, s in enumerate(dataset.schema.id_sequences)}
        converted, copied = conversion_rates(dataset, args.repeats)
        vocab_rows = ", ".join(f"{name} {dataset.vocab.sizes[name]:,}"
                               for name in ("ad_feat0", "user_feat0", "keywords", "interests"))
        # what the bags of a batch would take as int64 values and offsets instead of padded
        ragged_bytes = 8 * (arrays["bag_lengths"].sum(1).mean() + arrays["bags"].shape[1])
        padded_bytes = 8 * arrays["bags"].shape[1] * trimmed
        ours, floor = pooling_times(batches[0], args.embed_dim, max(args.repeats, 5))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    lines = [
        f"One prepared day of {day.rows:,} MAC-shaped rows with 3 ragged id sequences (kept "
        "lengths 20, 10 and 5) and 2 bags (max_length 16 and 8), ids drawn from MAC-scale "
        "ranges (items 9.6M, users 800k, keywords 1M, interests 100k; the vocabs hold the "
        f"ids the day holds: {vocab_rows}), CPU, best of {args.repeats}.", "",
        f"Converting the decoded day (lookups, cutting and padding each sequence to its own "
        f"length, bags): {converted / 1e6:.2f}M rows/s; copying its output arrays (the floor): "
        f"{copied / 1e6:.2f}M rows/s; {converted / copied:.2f} of the floor.", "",
        f"Batches of {b} rows, CPU tensors. Floor: copying the same rows of every cached array "
        "as stored.", "",
        "| order | `DayBatches` rows/s | copy floor rows/s | fraction of the floor |",
        "|---|---:|---:|---:|"]
    for name, (rate, copy) in rates.items():
        lines.append(f"| {name} | {rate / 1e6:.2f}M | {copy / 1e6:.2f}M | {rate / copy:.2f} |")
    lines += [
        "",
        "| memory | bytes a row |", "|---|---:|",
        f"| cache, all arrays | {sum(stored.values()):.0f} |",
        f"| cache, bags + bag_lengths | {stored['bags'] + stored['bag_lengths']:.0f} |",
        f"| cache, seq | {stored['seq']:.0f} |",
        f"| batch tensors (int64 ids) | {batch_bytes:.0f} |", "",
        f"Bags: {bag_fill / bag_cells:.0%} of the cache's {bag_cells} positions a bag hold "
        f"an id; a batch keeps its longest bag's {trimmed:.1f} positions on average. "
        "Sequences: " + ", ".join(f"{name} {fill:.0%}" for name, fill in seq_fill.items())
        + " of their own kept positions hold an item (the rest is padding, derived by "
        "`prepare`); `seq` is as wide as the longest, 20. "
        f"A batch's bags take {padded_bytes:.0f} bytes a row padded; "
        f"as int64 values and offsets they would take {ragged_bytes:.0f}. A batch carries "
        f"{batch_bytes / sum(stored.values()):.1f}× the cache's bytes a row: ids widen from "
        "int32 to int64.", "",
        f"Pooling one batch's bags ({b} rows, 2 bags, d = {args.embed_dim}) forward and "
        f"backward: `pooled_bag` {1e3 * ours:.2f} ms, `nn.EmbeddingBag` (floor) "
        f"{1e3 * floor:.2f} ms, {ours / floor:.1f}× the floor.", "",
        f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."]
    body = "\n".join(lines)
    print(body)
    if not args.no_report:
        update_section("batches with bags and ragged sequences",
                       invocation("bench_bag_batches", argv), body)


if __name__ == "__main__":
    main(sys.argv[1:])
