"""Prediction throughput of BASE (and MoAE) on CPU: the model alone and `malt predict` end to
end (read, map raw ids, score, write), eager torch against ONNX Runtime.

A MAC-schema file of `--rows` random unlabelled rows is written once, with vocabs of
`--vocab-rows` ids per field; the models have random weights (speed does not depend on them).
The forward floor is 2 x dense parameters FLOPs per row at the sgemm rate measured here.

    python -m benchmarks.bench_predict [--rows 1000000] [--batch 4096] [--threads N]
        [--models base moae] [--engines torch onnx]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from benchmarks.report import best_of, parse_arguments, publish, sgemm_rate
from malt.data.layout import write_vocab
from malt.data.lookups import load_lookups, vocab_info
from malt.data.schema import MAC
from malt.data.task import CAT, Task
from malt.deploy.predict import PREDICT_BATCH_ROWS, Scorer, file_sources, predict_file
from malt.models import model_spec
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.load import TrainedModel

MODELS = {"base": Task("last"), "moae": Task("last", ("first", "mta", "linear", CAT))}


def write_rows(root: Path, rows: int, vocab_rows: int, seed: int, row_group: int = 1 << 18
               ) -> Path:
    """An unlabelled MAC-schema file and the vocabs of its ids."""
    rng = np.random.default_rng(seed)
    length = MAC.sequence_length
    columns = {MAC.user_column: pa.array(rng.integers(0, vocab_rows, rows))}
    for f in MAC.fields:
        columns[f.name] = pa.array(rng.integers(1, vocab_rows, rows))  # 0 pads sequences
    offsets = pa.array(np.arange(0, rows * length + 1, length, dtype=np.int32))
    for s in MAC.id_sequences:
        ids = rng.integers(0, vocab_rows, (rows, length))
        ids[np.arange(length) >= rng.integers(0, length + 1, (rows, 1))] = 0
        columns[s.name] = pa.ListArray.from_arrays(offsets, pa.array(ids.reshape(-1)))
    for s in MAC.float_sequences:
        values = rng.uniform(-1, 1, rows * length).astype(np.float32)
        columns[s.name] = pa.ListArray.from_arrays(offsets, pa.array(values))
    path = root / "rows.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=row_group)
    for column in MAC.vocab_columns:
        write_vocab(root / "vocabs", column, [str(i) for i in range(vocab_rows)])
    return path


def trained_model(name: str, root: Path, seed: int) -> TrainedModel:
    lookups = load_lookups(MAC, root / "vocabs")
    info = vocab_info(MAC, lookups)
    torch.manual_seed(seed)
    model = model_spec(name).build(MAC, info, MODELS[name]).eval()
    config = RunConfig.from_dict({"data": {"path": str(root)}, "model": {"name": name}})
    return TrainedModel(run=RunDir(root), config=config, schema=MAC, task=MODELS[name],
                        lookups=lookups, vocab=info, model=model)


def model_rows_per_s(scorer: Scorer, arrays: dict[str, np.ndarray], repeats: int) -> float:
    """Rows/s of the model alone on converted rows, best of `repeats` after a warm-up."""
    scorer.score(arrays)
    seconds, _ = best_of(repeats, lambda: scorer.score(arrays))
    return len(arrays["sparse"]) / seconds


def predict_rows_per_s(scorer: Scorer, path: Path, out: Path) -> float:
    start = time.perf_counter()
    report = predict_file(scorer, file_sources(path), out, overwrite=True)
    return report.rows / (time.perf_counter() - start)


CONVERSIONS = {"between": {}, "ahead": {"convert_threads": 1, "ahead": True}}
"""`malt predict` as it converts (its columns side by side, between model calls) and as it did
before (one thread, beside the model)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--row-group", type=int, default=1 << 18,
                        help="rows per row group of the file (one chunk each)")
    parser.add_argument("--model-rows", type=int, default=131_072,
                        help="rows of the model-only measurement")
    parser.add_argument("--vocab-rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=PREDICT_BATCH_ROWS)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds; each times the model alone and each conversion once")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--engines", nargs="+", choices=["torch", "onnx"],
                        default=["torch", "onnx"])
    args = parse_arguments(parser, argv)
    flops = sgemm_rate(1024, 1024, 1024)
    lines = ["| model | engine | model only rows/s | of the forward floor | `malt predict` "
             "rows/s (read, map, score, write) | of the model only | converting one thread "
             "ahead (before) | of the model only |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write_rows(root, args.rows, args.vocab_rows, args.seed, args.row_group)
        for name in args.models:
            trained = trained_model(name, root, args.seed)
            dense = trained.model.parameter_counts()[0]
            floor = flops / (2 * dense)
            arrays = None
            for engine in args.engines:
                scorers = {how: Scorer(trained, engine=engine, batch_size=args.batch, **kw)
                           for how, kw in CONVERSIONS.items()}
                if arrays is None:
                    arrays = converted_rows(scorers["between"], path, args.model_rows)
                # Paired rounds: the model alone and each conversion, one after the other, so
                # that a change of the machine's load reaches all of them alike.
                rates: dict[str, list[float]] = {"model": [], **{how: [] for how in scorers}}
                for _ in range(args.repeats):
                    rates["model"].append(model_rows_per_s(scorers["between"], arrays, 1))
                    for how, scorer in scorers.items():
                        rates[how].append(predict_rows_per_s(scorer, path,
                                                             root / f"{name}-{engine}.parquet"))
                    loads.append(os.getloadavg()[0])
                alone, between, ahead = (max(rates[k]) for k in ("model", *CONVERSIONS))
                print(f"{name:<6} {engine:<6} model {alone:>10,.0f} rows/s "
                      f"({alone / floor:.0%} of floor), predict {between:>10,.0f} rows/s "
                      f"({between / alone:.0%}), one thread ahead {ahead:>10,.0f} "
                      f"({ahead / alone:.0%})", flush=True)
                lines.append(f"| {name} | {engine} | {alone:,.0f} | {alone / floor:.0%} | "
                             f"{between:,.0f} | {between / alone:.0%} | {ahead:,.0f} | "
                             f"{ahead / alone:.0%} |")
                del scorers
    body = (f"{args.rows:,} unlabelled MAC-schema rows in one parquet file (row groups of "
            f"{args.row_group:,} rows), vocabs of {args.vocab_rows:,} ids per field, random "
            f"weights, model calls of {args.batch:,} rows; model-only figures on "
            f"{args.model_rows:,} converted rows. Best of {args.repeats} paired rounds (the "
            f"model alone, then `predict_file` as it converts, then converting one thread "
            f"ahead as it did before). Forward floor = sgemm rate ({flops / 1e9:.0f} GFLOP/s "
            f"here) / (2 x dense parameters). Target: `malt predict` at >= 80% of the model "
            f"only. Load average (1 min) during the rounds: {min(loads):.1f} to "
            f"{max(loads):.1f} on {os.cpu_count()} cores.\n\n" + "\n".join(lines))
    publish("predict", "bench_predict", argv, body, report=not args.no_report)


def converted_rows(scorer: Scorer, path: Path, rows: int) -> dict[str, np.ndarray]:
    """The first `rows` rows of `path`, converted as `malt predict` converts them."""
    from malt.data.reader import array_shapes, open_parquet

    table = open_parquet(path).read_row_group(0).slice(0, rows)
    schema = scorer.trained.schema
    arrays = {n: np.empty(shape, dtype) for n, (shape, dtype) in
              array_shapes(schema, table.num_rows, labels=False).items()}
    scorer.converter.convert(table, 0, str(path), arrays)
    return arrays


if __name__ == "__main__":
    main()
