"""Evaluation throughput: rows/s of scoring a prepared test day as `malt train` and `malt eval`
do (`malt.eval.predictions.score_days`: batches from the memory-mapped cache, forward pass,
probabilities gathered in row order), BASE and MoAE, at the training batch and larger.

    python -m benchmarks.bench_eval [--data DIR] [--repeats 3] [--threads N]

The models have their initial weights (speed does not depend on them); the data set is the
simulated `small` one (simulated into a temporary directory when --data is not given).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from benchmarks.report import best_of, parse_arguments, publish, sgemm_rate
from malt.eval.predictions import score_days
from malt.runs.config import RunConfig
from malt.training.builder import build_run

MODELS = {"base": [], "moae": ["first", "linear", "mta", "cat"]}
BATCHES = (4096, 16384)


def rows_per_s(data: Path, model: str, aux: list[str], batch: int, repeats: int
               ) -> tuple[int, float]:
    """(dense parameters, rows/s of scoring the test day) of `model`."""
    config = RunConfig.from_dict({"data": {"path": str(data)},
                                  "task": {"main": "last", "aux": aux},
                                  "train": {"device": "cpu"}, "model": {"name": model}})
    built = build_run(config)
    days = built.eval_days

    def score():
        return score_days(built.model, days, built.task, built.dataset.schema, batch_size=batch,
                       device=torch.device("cpu"))

    score()
    seconds, predictions = best_of(repeats, score)
    return built.model.parameter_counts()[0], len(predictions.probs) / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="MAC-layout data set (default: simulate 'small')")
    parser.add_argument("--repeats", type=int, default=3)
    args = parse_arguments(parser, argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from malt.sources.simulate import simulate, size_config

            data = Path(tmp) / "small"
            simulate(size_config("small"), data)
        flops = sgemm_rate(1024, 1024, 1024)
        lines = ["| model | batch | rows/s | of the forward floor |", "|---|---:|---:|---:|"]
        for name, aux in MODELS.items():
            for batch in BATCHES:
                dense, rate = rows_per_s(data, name, aux, batch, args.repeats)
                floor = flops / (2 * dense)
                print(f"{name:<6} batch {batch:>6}  {rate:>10,.0f} rows/s "
                      f"({rate / floor:.0%} of floor)", flush=True)
                lines.append(f"| {name} | {batch:,} | {rate:,.0f} | {rate / floor:.0%} |")
    source = "the simulated `small` set" if args.data is None else args.data
    body = (f"Scoring the test day of {source} "
            f"with `malt.eval.predictions.score_days` (what `malt train` runs after training and "
            f"`malt eval --data` runs), initial weights, best of {args.repeats} after one warm-up "
            f"pass; rows/s over the whole day, batching and gathering included. Forward floor = "
            f"sgemm rate ({flops / 1e9:.0f} GFLOP/s here) / (2 x dense parameters). Target: "
            f"BASE ≥ 200k rows/s. Load average at the end: {os.getloadavg()[0]:.2f}.\n\n"
            + "\n".join(lines))
    publish("evaluation", "bench_eval", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
