"""`--compile` against eager training steps: BASE and MoAE + CAT at the `small` simulation's
tables, row-wise Adam (the default) and dense Adam, and the seconds the first compiled step
takes.

A step is what `benchmarks.bench_scale` times (forward, losses, backward, optimiser) on a
synthetic batch; the compiled model is set up as `malt train --compile` sets it up
(`malt.training.compiled.compile_forward`). The compiler's on-disk cache is kept between runs,
so the compile time is that of a warm cache when the script ran before on this machine.

    python -m benchmarks.bench_compile [--batch 4096] [--steps 8] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from benchmarks.bench_scale import (
    TABLE_OPTIMIZERS,
    full_step,
    small_vocab,
    synthetic_batch,
    training_setup,
)
from benchmarks.report import parse_arguments, publish
from malt.training.compiled import compile_forward

MODELS = ("base", "moae")


def first_step_seconds(model, task, optimisation, batch) -> float:
    """Seconds of one full step (the compiled model's first: it compiles)."""
    model.train()
    started = time.perf_counter()
    model.loss_terms(model(batch), batch).total(task.aux_weight).backward()
    optimisation.step()
    optimisation.zero_grad()
    return time.perf_counter() - started


def alternating_step_seconds(setups: dict, batch: dict, steps: int) -> dict[bool, list[float]]:
    """Seconds of `steps` full steps of each (model, task, optimisation) of `setups`, after one
    warm-up step each, taken in alternation (ABBA) so that other processes' load falls on both
    alike."""
    times: dict[bool, list[float]] = {key: [] for key in setups}
    for key, setup in setups.items():
        setup[0].train()
        full_step(*setup, batch)
    for i in range(steps):
        for key in list(setups)[::1 if i % 2 == 0 else -1]:
            started = time.perf_counter()
            full_step(*setups[key], batch)
            times[key].append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--section", default="torch.compile",
                        help="BENCHMARKS.md section to publish into")
    args = parse_arguments(parser, argv)
    vocab = small_vocab()
    batch = synthetic_batch(vocab, args.batch, args.seed)
    lines = ["| model | tables' optimiser | eager samples/s | compiled samples/s | compiled / "
             "eager | first compiled step s |", "|---|---|---:|---:|---:|---:|"]
    for name in MODELS:
        for table_optimizer in ("rows", "dense"):
            setups = {compiled: training_setup(name, vocab, table_optimizer, args.seed)
                      for compiled in (False, True)}
            compile_forward(setups[True][0])
            first = first_step_seconds(*setups[True], batch)
            times = alternating_step_seconds(setups, batch, args.steps)
            rates = {compiled: args.batch / statistics.median(t) for compiled, t in times.items()}
            print(f"{name:<6} {table_optimizer:<6} eager {rates[False]:>8,.0f}  compiled "
                  f"{rates[True]:>8,.0f}  first step {first:.1f} s", flush=True)
            lines.append(f"| {name} | {TABLE_OPTIMIZERS[table_optimizer]} | "
                         f"{rates[False]:,.0f} | {rates[True]:,.0f} | "
                         f"{rates[True] / rates[False]:.2f} | {first:.1f} |")
    body = (f"Full training steps at batch {args.batch} on synthetic ids over the tables of the "
            f"simulated `small` set, median of {args.steps} after one warm-up step, the "
            f"eager and the compiled model's steps taken in alternation, "
            f"{torch.get_num_threads()} torch thread(s); compiled = `--compile` (inductor, the "
            f"embedding lookups eager). First compiled step: the compile, from the compiler's "
            f"on-disk cache when the script ran before; the second model of a kind reuses the "
            f"first one's graph in the same process. Load average at the end: "
            f"{os.getloadavg()[0]:.2f}.\n\n" + "\n".join(lines))
    publish(args.section, "bench_compile", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
