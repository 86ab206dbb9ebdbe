"""Training throughput: samples/s of full optimiser steps per model (each optimiser of the
tables), and
the cost of GCS / PCGrad relative to the plain λ-weighted step.

    python -m benchmarks.bench_train [--data DIR] [--steps 12] [--threads N]

Steps are `Trainer.train_step` on real batches of a simulated `small` data set (simulated into
a temporary directory when --data is not given), so batching, losses and the optimiser are all
in the figure. Evaluation and checkpointing are not.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.bench_scale import TABLE_OPTIMIZERS
from benchmarks.report import update_section
from malt.data import prepare
from malt.data.batches import DayBatches
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.training.builder import build_run
from malt.training.trainer import Trainer

AUX = ["first", "linear", "mta"]
MODELS = {"base": [], "shared_bottom": AUX, "mmoe": AUX, "ple": AUX, "home": AUX,
          "natal": [*AUX, "cat"], "moae": [*AUX, "cat"]}


def samples_per_second(data: Path, model: str, aux: list[str], steps: int, **train) -> float:
    config = RunConfig.from_dict({"data": {"path": str(data)},
                                  "task": {"main": "last", "aux": aux},
                                  "train": {"device": "cpu", **train}, "model": {"name": model}})
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(build_run(config), RunDir(Path(tmp)))
        batches = iter(DayBatches(trainer.train_days[0], trainer.config.train.batch_size))
        for _ in range(2):
            trainer.train_step(next(batches))
        rows, started = 0, time.perf_counter()
        for _ in range(steps):
            batch = next(batches)
            trainer.train_step(batch)
            rows += batch["labels"].shape[0]
        return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", help="simulated data set (default: simulate 'small')")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.data:
        data = Path(args.data)
    else:
        from malt.sources.simulate import simulate, size_config

        data = Path(tempfile.mkdtemp()) / "small"
        simulate(size_config("small", seed=0), data)
    dataset = prepare(data)
    vocab_rows = sum(dataset.vocab.sizes.values())

    rows = ["| model | views | " + " | ".join(f"{v} samples/s"
                                              for v in TABLE_OPTIMIZERS.values())
            + " |", "|---|---|" + "---:|" * len(TABLE_OPTIMIZERS)]
    for model, aux in MODELS.items():
        rates = [samples_per_second(data, model, aux, args.steps, table_optimizer=k)
                 for k in TABLE_OPTIMIZERS]
        rows.append(f"| {model} | {' '.join(['last', *aux])} | "
                    + " | ".join(f"{r:,.0f}" for r in rates) + " |")
        print(rows[-1], flush=True)

    atl = ["| model | plain samples/s | GCS | PCGrad | GCS overhead | PCGrad overhead |",
           "|---|---:|---:|---:|---:|---:|"]
    for model in ("mmoe", "moae"):
        plain = samples_per_second(data, model, MODELS[model], args.steps)
        gcs = samples_per_second(data, model, MODELS[model], args.steps, grad_method="gcs")
        pcgrad = samples_per_second(data, model, MODELS[model], args.steps, grad_method="pcgrad")
        atl.append(f"| {model} | {plain:,.0f} | {gcs:,.0f} | {pcgrad:,.0f} | "
                   f"{plain / gcs:.2f}× | {plain / pcgrad:.2f}× |")
        print(atl[-1], flush=True)

    body = (f"Full training steps (`Trainer.train_step`: forward, per-view losses, backward, "
            f"Adam) at batch 4096 on day 0 of the simulated set {data.name} "
            f"({dataset.train[0].rows:,} rows; {vocab_rows:,} embedding rows in all), "
            f"{args.steps} timed steps after 2 warm-up steps, {args.threads} torch thread(s). "
            "The optimisers of the tables are `--table-optimizer dense|rows|lazy` (see "
            "docs/training.md).\n\n"
            + "\n".join(rows)
            + "\n\nAuxiliary-task learning (paper variants; per-task gradients over every "
              "parameter, embeddings included); overhead = plain / method time per sample:\n\n"
            + "\n".join(atl))
    update_section("training", f"python -m benchmarks.bench_train --threads {args.threads}",
                   body)


if __name__ == "__main__":
    main()
