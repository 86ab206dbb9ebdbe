"""The optimisers of the embedding tables compared on full training steps, in CPU time of one
thread (so that other work on the machine barely moves the figures): dense Adam as torch's
per-tensor loop and as its fused kernel, row-wise Adam (malt's default: sparse gradients, dense
Adam's numbers) and lazy Adam (torch's SparseAdam), for BASE and MoAE at the `small` and the
MAC-scale tables.

    python -m benchmarks.bench_optim [--steps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from unittest import mock

import torch

from benchmarks.bench_scale import (
    mac_vocab,
    median_step_seconds,
    small_vocab,
    synthetic_batch,
    training_setup,
)
from benchmarks.report import publish
from malt.training import optim

VARIANTS = {
    "dense, per-tensor loop": ("dense", {"fused_adam": lambda params: None}),
    "dense, fused": ("dense", {}),
    "row-wise (default)": ("rows", {}),
    "lazy (SparseAdam)": ("lazy", {}),
}
"""label -> (table optimiser, replacements in malt.training.optim while it is built)."""


def samples_per_cpu_second(name: str, vocab, batch, table_optimizer: str, replaced: dict,
                           steps: int) -> float:
    with mock.patch.multiple(optim, **replaced) if replaced else contextlib.nullcontext():
        model, task, optimisation = training_setup(name, vocab, table_optimizer, seed=0)
    seconds = median_step_seconds(model, task, optimisation, batch, steps, clock=time.thread_time)
    return len(batch["labels"]) / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    lines = ["| tables | model | " + " | ".join(VARIANTS) + " |",
             "|---|---|" + "---:|" * len(VARIANTS)]
    for label, vocab in {"small": small_vocab(), "MAC-scale": mac_vocab()}.items():
        batch = synthetic_batch(vocab, 4096, 0)
        for name in ("base", "moae"):
            rates = [samples_per_cpu_second(name, vocab, batch, table_optimizer, replaced,
                                            args.steps)
                     for table_optimizer, replaced in VARIANTS.values()]
            print(label, name, " ".join(f"{r:,.0f}" for r in rates), flush=True)
            lines.append(f"| {label} | {name} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
    body = ("Samples per CPU second of one thread (`time.thread_time`, torch set to 1 thread), "
            f"full training steps at batch 4096 on synthetic ids, median of {args.steps} after "
            "one warm-up step; tables as in \"training at scale\". CPU time rather than wall "
            "time, so that the comparison holds on a shared machine.\n\n" + "\n".join(lines))
    publish("optimisers of the tables", "bench_optim", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
