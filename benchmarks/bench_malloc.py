"""What keeping freed memory (`malt.allocator`) is worth: training steps and scoring passes with
glibc's own malloc settings against malt's, each in its own process.

Per model and table size: mean samples/s over `--steps` full training steps (row-wise Adam,
batch 4096, after two warm-up steps), the page faults and the kernel time per step, and the
mean rows/s of eval-mode forward passes of 16,384 rows. Means, not medians: a step that faults
its activations in again is a step the user waits for.

    python -m benchmarks.bench_malloc [--steps 8] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from benchmarks.bench_scale import (
    full_step,
    mac_vocab,
    small_vocab,
    synthetic_batch,
    training_setup,
)
from benchmarks.report import parse_arguments, publish
from malt.allocator import OPT_OUT

MODELS = ("base", "moae")
SCORE_ROWS = 16384
SETTINGS = {"system": "glibc's settings (`MALT_MALLOC=system`)", "kept": "malt's (kept)"}


def counters() -> tuple[float, int, float]:
    """(wall seconds, minor page faults, kernel CPU seconds) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), usage.ru_minflt, usage.ru_stime


def measure(repeats: int, fn) -> dict[str, float]:
    """Mean wall seconds, faults and kernel seconds of `fn` over `repeats` calls after two."""
    for _ in range(2):
        fn()
    start = counters()
    for _ in range(repeats):
        fn()
    end = counters()
    return {k: (b - a) / repeats for k, a, b in zip(("seconds", "faults", "system"), start, end)}


def child(steps: int, seed: int) -> list[dict]:
    """The figures of this process (run with one allocator setting)."""
    results = []
    for tables, vocab in (("small", small_vocab()), ("MAC-scale", mac_vocab())):
        batch = synthetic_batch(vocab, 4096, seed)
        scored = synthetic_batch(vocab, SCORE_ROWS, seed)
        for name in MODELS:
            model, task, optimisation = training_setup(name, vocab, "rows", seed)

            def step():
                model.train()
                full_step(model, task, optimisation, batch)

            def score():
                model.eval()
                with torch.inference_mode():
                    model.probabilities(scored)

            train, forward = measure(steps, step), measure(steps, score)
            results.append({"model": name, "tables": tables,
                            "train": 4096 / train["seconds"], "faults": train["faults"],
                            "system_ms": 1e3 * train["system"],
                            "step_ms": 1e3 * train["seconds"],
                            "score": SCORE_ROWS / forward["seconds"],
                            "score_faults": forward["faults"]})
    return results


def run_child(setting: str, argv: list[str]) -> list[dict]:
    env = {**os.environ, OPT_OUT: "system" if setting == "system" else ""}
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_malloc", "--child", *argv],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parse_arguments(parser, argv)
    if args.child:
        print(json.dumps(child(args.steps, args.seed)))
        return
    passed = ["--steps", str(args.steps), "--seed", str(args.seed)]
    if args.threads is not None:
        passed += ["--threads", str(args.threads)]
    figures = {s: run_child(s, passed) for s in SETTINGS}
    lines = ["| model | tables | malloc | train samples/s | faults / step | kernel ms / step "
             "| step ms | score rows/s | faults / scoring pass |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for i, row in enumerate(figures["system"]):
        for setting in SETTINGS:
            r = figures[setting][i]
            lines.append(f"| {row['model']} | {row['tables']} | {SETTINGS[setting]} | "
                         f"{r['train']:,.0f} | {r['faults']:,.0f} | {r['system_ms']:.0f} | "
                         f"{r['step_ms']:.0f} | {r['score']:,.0f} | {r['score_faults']:,.0f} |")
    body = (f"Each setting in its own process; training: mean of {args.steps} full steps "
            f"(row-wise Adam, batch 4096, synthetic ids as in \"training at scale\") after two "
            f"warm-up steps; scoring: mean of {args.steps} eval-mode forward passes of "
            f"{SCORE_ROWS:,} rows. Load average at the end: {os.getloadavg()[0]:.2f}.\n\n"
            + "\n".join(lines))
    publish("page faults", "bench_malloc", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
