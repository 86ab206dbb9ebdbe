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
import time

import torch

from benchmarks.bench_scale import (
    TABLE_OPTIMIZERS,
    median_step_seconds,
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=8)
    args = parse_arguments(parser, argv)
    vocab = small_vocab()
    batch = synthetic_batch(vocab, args.batch, args.seed)
    lines = ["| model | tables' optimiser | eager samples/s | compiled samples/s | compiled / "
             "eager | first compiled step s |", "|---|---|---:|---:|---:|---:|"]
    for name in MODELS:
        for table_optimizer in ("rows", "dense"):
            rates, first = {}, 0.0
            for compiled in (False, True):
                model, task, optimisation = training_setup(name, vocab, table_optimizer,
                                                           args.seed)
                if compiled:
                    compile_forward(model)
                    first = first_step_seconds(model, task, optimisation, batch)
                seconds = median_step_seconds(model, task, optimisation, batch, args.steps)
                rates[compiled] = args.batch / seconds
            print(f"{name:<6} {table_optimizer:<6} eager {rates[False]:>8,.0f}  compiled "
                  f"{rates[True]:>8,.0f}  first step {first:.1f} s", flush=True)
            lines.append(f"| {name} | {TABLE_OPTIMIZERS[table_optimizer]} | "
                         f"{rates[False]:,.0f} | {rates[True]:,.0f} | "
                         f"{rates[True] / rates[False]:.2f} | {first:.1f} |")
    body = (f"Full training steps at batch {args.batch} on synthetic ids over the tables of the "
            f"simulated `small` set, median of {args.steps} after one warm-up step, "
            f"{torch.get_num_threads()} torch thread(s); compiled = `--compile` (inductor, the "
            f"embedding lookups eager). First compiled step: the compile, from the compiler's "
            f"on-disk cache when the script ran before; the second model of a kind reuses the "
            f"first one's graph in the same process. Load average at the end: "
            f"{os.getloadavg()[0]:.2f}.\n\n" + "\n".join(lines))
    publish("torch.compile", "bench_compile", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
