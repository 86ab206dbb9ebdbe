"""What MKL's reproducible mode (`malt.reproducible`, set by `import malt`) costs: training steps
and scoring passes with MKL's reproducibility off and on, each setting in its own processes.

Per model at MAC-scale tables: mean samples/s over `--steps` full training steps (row-wise Adam,
batch 4096, after two warm-up steps) and mean rows/s of eval-mode forward passes of 16,384 rows,
beside the floor of the same process (float32 GEMM, 4096 x 1024 x 1024). The settings take
turns, `--rounds` times, so that a slow minute of a shared machine hits both.

    python -m benchmarks.bench_reproducible [--steps 8] [--rounds 3] [--threads N]

Settings: off, `AUTO` (reproducible when the arguments are aligned, per MKL's documentation)
and `AUTO,STRICT` (malt's: also whatever the alignment).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch

from benchmarks.bench_malloc import measure
from benchmarks.bench_scale import full_step, mac_vocab, synthetic_batch, training_setup
from benchmarks.report import parse_arguments, publish, sgemm_rate
from malt.reproducible import VARIABLE, mkl_reproducible

MODELS = ("base", "moae")
SCORE_ROWS = 16384
SETTINGS = {"off": "", "auto": "AUTO", "strict": "AUTO,STRICT"}
"""`MKL_CBWR` per setting: empty turns MKL's reproducibility off (malt keeps a value it finds)."""


def child(steps: int, seed: int) -> dict:
    """The figures of this process (run with one MKL setting)."""
    figures = {"reproducible": mkl_reproducible(), "floor": sgemm_rate(4096, 1024, 1024) / 1e9}
    vocab = mac_vocab()
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

        figures[name] = {"train": 4096 / measure(steps, step)["seconds"],
                         "score": SCORE_ROWS / measure(steps, score)["seconds"]}
    return figures


def run_child(setting: str, argv: list[str]) -> dict:
    env = {**os.environ, VARIABLE: SETTINGS[setting]}
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_reproducible", "--child",
                          *argv], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parse_arguments(parser, argv)
    if args.child:
        print(json.dumps(child(args.steps, args.seed)))
        return
    passed = ["--steps", str(args.steps), "--seed", str(args.seed)]
    if args.threads is not None:
        passed += ["--threads", str(args.threads)]
    rounds = [{s: run_child(s, passed) for s in SETTINGS} for _ in range(args.rounds)]
    for figures in rounds:
        if figures["off"]["reproducible"] or figures["strict"]["reproducible"] is False:
            raise SystemExit("a child did not run in the MKL mode it was given")
    lines = ["| model | MKL | floor GFLOP/s | train samples/s | % of floor-relative off "
             "| score rows/s | % of floor-relative off |", "|---|---|---:|---:|---:|---:|---:|"]
    for name in MODELS:
        for setting, value in SETTINGS.items():
            label = f"`{VARIABLE}={value}`" if value else "off (empty)"
            floor = statistics.mean(r[setting]["floor"] for r in rounds)
            cells = [f"| {name} | {label} | {floor:,.0f}"]
            for kind in ("train", "score"):
                rate = statistics.mean(r[setting][name][kind] for r in rounds)
                # Each round's rate over its floor, relative to the same for `off`.
                relative = [100 * (r[setting][name][kind] / r[setting]["floor"])
                            / (r["off"][name][kind] / r["off"]["floor"]) for r in rounds]
                cells.append(f"{rate:,.0f} | {statistics.mean(relative):.1f} "
                             f"({min(relative):.1f}-{max(relative):.1f})")
            lines.append(" | ".join(cells) + " |")
    body = (f"Each setting in its own process, {args.rounds} rounds taking turns; training: mean "
            f"of {args.steps} full steps (row-wise Adam, batch 4096, MAC-scale tables, synthetic "
            f"ids as in \"training at scale\") after two warm-up steps; scoring: mean of "
            f"{args.steps} eval-mode forward passes of {SCORE_ROWS:,} rows. The floor: float32 "
            f"GEMM 4096 x 1024 x 1024 in the same process. \"% of floor-relative off\": the rate "
            f"over its process's floor, as a percentage of the same for MKL off; mean of the "
            f"rounds (lowest-highest). Load average at the end: {os.getloadavg()[0]:.2f}.\n\n"
            + "\n".join(lines))
    publish("MKL reproducible mode", "bench_reproducible", argv, body,
            report=not args.no_report)


if __name__ == "__main__":
    main()
