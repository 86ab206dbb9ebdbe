"""Where a training step's time goes: torch.profiler over full BASE and MoAE steps (default
settings: row-wise Adam on the tables) at the `small` and the MAC-scale tables, by operator.

    python -m benchmarks.profile_step [--steps 3] [--threads 2]

Self CPU time per operator, summed over `--steps` steps after one warm-up step, as a share of
the total; the matrix products (mm, bmm, addmm) are what the floor of "training at scale"
counts, the rest is what keeps a step from it.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.bench_scale import (
    mac_vocab,
    median_step_seconds,
    small_vocab,
    synthetic_batch,
    training_setup,
)
from benchmarks.report import publish

MATMUL = {"aten::mm", "aten::bmm", "aten::addmm"}
TOP = 8


def operator_shares(name: str, vocab, steps: int) -> tuple[float, list[tuple[str, float]]]:
    """(share of the matrix products, the `TOP` operators with their shares) of model `name`."""
    model, task, optimisation = training_setup(name, vocab, "rows", seed=0)
    batch = synthetic_batch(vocab, 4096, 0)
    median_step_seconds(model, task, optimisation, batch, 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        median_step_seconds(model, task, optimisation, batch, steps)
    times = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(times.values())
    top = sorted(times.items(), key=lambda kv: -kv[1])[:TOP]
    return sum(times.get(k, 0.0) for k in MATMUL) / total, [(k, t / total) for k, t in top]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--section", default="step profile",
                        help="BENCHMARKS.md section to publish into")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines = ["| model | tables | matrix products | largest operators (share of self CPU time) |",
             "|---|---|---:|---|"]
    for label, vocab in {"small": small_vocab(), "MAC-scale": mac_vocab()}.items():
        for name in ("base", "moae"):
            matmul, top = operator_shares(name, vocab, args.steps)
            ops = ", ".join(f"{k.removeprefix('aten::')} {share:.0%}" for k, share in top)
            lines.append(f"| {name} | {label} | {matmul:.0%} | {ops} |")
            print(lines[-1], flush=True)
    body = (f"torch.profiler, self CPU time of {args.steps} full training steps (batch 4096, "
            f"synthetic ids, row-wise Adam on the tables, {args.threads} torch threads) after one "
            "warm-up step; tables as in \"training at scale\". `index_select`, `index_copy_`, "
            "`scatter_add_` (the sum of a row's gradients), `_unique2`/`sort` are the row-wise "
            "optimiser and the lookups; `fill_` zero-fills new buffers. Load average at the end: "
            f"{os.getloadavg()[0]:.2f}.\n\n" + "\n".join(lines))
    publish(args.section, "profile_step", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
