"""Speed of `--precision bf16` against float32 on the CPU: training steps and scoring of BASE
and MoAE at the `small` tables, each as a fraction of the matmul floor measured in the same
run.

A training step is what `Trainer.train_step` does for one batch: the forward pass (under
bfloat16 autocast for bf16), the losses on its float32 outputs, backward and the optimiser
(row-wise Adam on the tables, malt's default). Scoring is `model.probabilities` under inference
mode, as `malt eval` and the torch engine call it. Batches are synthetic, ids uniform over each
table (`benchmarks.bench_scale`). The floor is the float32 product at the expert's shape (batch
x 336 x 256) over 6 x dense parameters per trained sample and 2 x per scored row; the same
product in bfloat16 is timed too. The floor's products, the steps and the scoring calls of both
precisions are timed in alternation, round by round, so that other processes' load on a shared
machine falls on all of them alike.

    python -m benchmarks.bench_precision [--batch 4096] [--steps 8] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from benchmarks.bench_scale import small_vocab, synthetic_batch, training_setup
from benchmarks.report import parse_arguments, publish
from malt.precision import BF16_CPU_FLAGS, as_float32, autocast, cpu_flags

MODELS = ("base", "moae")
PRECISIONS = ("fp32", "bf16")


def clock() -> float:
    """The thread's CPU time with one torch thread (other processes on a shared machine do not
    inflate it), else wall time."""
    return time.thread_time() if torch.get_num_threads() == 1 else time.perf_counter()


def gemm_seconds(a: torch.Tensor, b: torch.Tensor, repeats: int = 5) -> float:
    """Fastest of `repeats` products `a @ b`."""
    times = []
    for _ in range(repeats):
        started = clock()
        a @ b
        times.append(clock() - started)
    return min(times)


def train_step(model, task, optimisation, batch: dict, precision: str) -> None:
    """One step as `Trainer.train_step` takes it in `precision`."""
    with autocast(precision, "cpu"):
        outputs = model(batch)
    model.loss_terms(as_float32(outputs), batch).total(task.aux_weight).backward()
    optimisation.step()
    optimisation.zero_grad()


def score(model, batch: dict, precision: str) -> None:
    """Probabilities of the batch as `malt eval` and the torch engine compute them."""
    with torch.inference_mode(), autocast(precision, "cpu"):
        model.probabilities(batch)


def interleaved_times(name: str, batch: dict, rounds: int, seed: int, vocab
                      ) -> tuple[int, dict[str, dict[str, list[float]]]]:
    """(dense parameters, {precision: {"train" | "score" | "gemm": seconds of each round}}):
    each round times, in float32 and then in bf16, the floor's product, one training step and
    one scoring call, so that load from other processes falls on all of them alike; `rounds`
    rounds after one warm-up round."""
    setups = {p: training_setup(name, vocab, "rows", seed) for p in PRECISIONS}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    rows = len(batch["labels"])
    gemms = {p: (torch.randn(rows, 336, dtype=d), torch.randn(336, 256, dtype=d))
             for p, d in dtypes.items()}
    times: dict[str, dict[str, list[float]]] = {p: {"train": [], "score": [], "gemm": []}
                                                for p in PRECISIONS}
    for i in range(rounds + 1):
        for precision, (model, task, optimisation) in setups.items():
            gemm = gemm_seconds(*gemms[precision])
            model.train()
            start = clock()
            train_step(model, task, optimisation, batch, precision)
            trained = clock()
            model.eval()
            score(model, batch, precision)
            if i:
                times[precision]["gemm"].append(gemm)
                times[precision]["train"].append(trained - start)
                times[precision]["score"].append(clock() - trained)
    return setups["fp32"][0].parameter_counts()[0], times


def speedup(times: dict[str, dict[str, list[float]]], what: str) -> str:
    """bf16's speed over float32's for `what`: the median of the rounds' ratios (each round
    pairs the two precisions timed back to back) with their quartiles."""
    ratios = [f / b for f, b in zip(times["fp32"][what], times["bf16"][what], strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return f"{median:.2f} [{q1:.2f}, {q3:.2f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=8, help="timed rounds")
    parser.add_argument("--section", help="BENCHMARKS.md section to publish into (default: "
                        "\"bf16 speed, N threads\"); one per CPU keeps each CPU's figures")
    args = parse_arguments(parser, argv)
    vocab = small_vocab()
    batch = synthetic_batch(vocab, args.batch, args.seed)
    lines = ["| model | precision | train samples/s | of the floor | bf16 speed-up | "
             "score rows/s | of the floor | bf16 speed-up | floor's product GFLOP/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in MODELS:
        dense, times = interleaved_times(name, batch, args.steps, args.seed, vocab)
        work = {"train": len(batch["labels"]), "score": len(batch["labels"]),
                "gemm": 2 * args.batch * 336 * 256}
        rate = {p: {k: work[k] / statistics.median(v) for k, v in t.items()}
                for p, t in times.items()}
        floor = rate["fp32"]["gemm"] / dense
        for precision, r in rate.items():
            print(f"{name:<5} {precision}  train {r['train']:>9,.0f}  score {r['score']:>10,.0f}"
                  f"  gemm {r['gemm'] / 1e9:>6.0f} GFLOP/s", flush=True)
            ratios = ("1", "1") if precision == "fp32" else \
                (speedup(times, "train"), speedup(times, "score"))
            lines.append(f"| {name} | {precision} | {r['train']:,.0f} | "
                         f"{r['train'] / (floor / 6):.0%} | {ratios[0]} | {r['score']:,.0f} | "
                         f"{r['score'] / (floor / 2):.0%} | {ratios[1]} | "
                         f"{r['gemm'] / 1e9:.0f} |")
    native = sorted((cpu_flags() or frozenset()) & set(BF16_CPU_FLAGS))
    body = (f"bfloat16 instructions of this CPU: {', '.join(native) or 'none (emulated)'}. "
            f"Training steps (forward under bfloat16 autocast for bf16, float32 losses, backward, "
            f"row-wise Adam) and scoring (`model.probabilities`, inference mode) at batch "
            f"{args.batch} on synthetic ids over the tables of the simulated `small` set. Each of "
            f"{args.steps} rounds (after one warm-up round) times, in float32 and then in bf16, "
            f"the floor's product (best of 5), a training step and a scoring call, so that the "
            f"load of other processes falls on all of them alike (timed in the thread's CPU time "
            f"with one torch thread, else in wall time); the figures are medians over "
            f"the rounds; a speed-up is the median of the rounds' float32 / bf16 time ratios "
            f"[quartiles]. Floor = the float32 product {args.batch} x 336 x 256 (the expert's "
            f"shape) / (6 x dense parameters) per trained sample, / (2 x) per scored row, for "
            f"both precisions; the last column is that product's rate in the row's precision, "
            f"what a bf16 run's matrix products could gain at most. Load average at the end: "
            f"{os.getloadavg()[0]:.2f}.\n\n" + "\n".join(lines))
    threads = torch.get_num_threads()
    section = args.section or f"bf16 speed, {threads} thread{'s' if threads > 1 else ''}"
    publish(section, "bench_precision", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
