"""Accuracy of `--precision bf16` against float32: BASE and MoAE trained and scored in each
precision on one simulated set, several seeds, each difference with its paired interval.

    python -m benchmarks.bench_precision_accuracy --out DIR [--users 8000] [--seeds 1 2 3]

Runs are trained into DIR/runs (a finished run is read back, so an interrupted measurement
resumes). Two comparisons per model, on the test day's last-click view: runs trained and scored
in bf16 against runs trained and scored in float32 (seed s against seed s), and the float32 runs
rescored in bf16 against themselves (the scoring's share of the difference). The intervals are
`malt.eval.compare.compare`'s: a paired bootstrap over the test users and the seeds.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from benchmarks.bench_train import AUX
from benchmarks.report import publish
from malt.eval.compare import Comparison, compare
from malt.eval.predictions import Predictions
from malt.eval.rescore import rescore
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir

MODELS = {"base": [], "moae": [*AUX, "cat"]}
METRICS = ("auc", "gauc", "logloss")


def trained(data: Path, root: Path, model: str, precision: str, seed: int) -> RunDir:
    """The run of `model` in `precision` with `seed` (trained unless it already finished)."""
    run = RunDir(root / f"{model}-{precision}-s{seed}")
    if not run.is_complete():
        config = RunConfig.from_dict({
            "seed": seed, "data": {"path": str(data)},
            "task": {"main": "last", "aux": MODELS[model]},
            "train": {"device": "cpu", "precision": precision}, "model": {"name": model}})
        train_run(config, run.path, overwrite=True)
    return run


def cell(comparison: Comparison, metric: str) -> str:
    d = comparison.deltas[metric]
    return f"{100 * d.estimate:+.3f} [{100 * d.low:+.3f}, {100 * d.high:+.3f}]"


def row(model: str, what: str, comparison: Comparison) -> str:
    return (f"| {model} | {what} | " + " | ".join(cell(comparison, m) for m in METRICS)
            + f" | {comparison.verdict} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory of the data set and the runs")
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--sim-seed", type=int, default=2026)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args(argv)
    out = Path(args.out)
    data = out / "sim"
    if not data.exists():
        from malt.sources.simulate import simulate, size_config

        simulate(size_config("tiny", seed=args.sim_seed, users=args.users), data)
    lines = ["| model | bf16 − float32 | ΔAUC (pt) [95 %] | ΔGAUC (pt) [95 %] | Δlogloss (pt) "
             "[95 %] | verdict |", "|---|---|---|---|---|---|"]
    means = []
    for model in MODELS:
        runs = {p: [trained(data, out / "runs", model, p, s) for s in args.seeds]
                for p in ("fp32", "bf16")}
        scored = {p: [Predictions.load(r.predictions_file) for r in runs[p]] for p in runs}
        rescored = [rescore(r, data, device="cpu", precision="bf16") for r in runs["fp32"]]
        trained_too = compare(scored["bf16"], scored["fp32"], "last", metrics=METRICS)
        scoring_only = compare(rescored, scored["fp32"], "last", metrics=METRICS)
        lines.append(row(model, "trained and scored in bf16", trained_too))
        lines.append(row(model, "float32 runs scored in bf16", scoring_only))
        print("\n".join(lines[-2:]), flush=True)
        fp32 = [r.load_metrics().views["last"] for r in runs["fp32"]]
        means.append(f"{model}: float32 AUC {np.mean([m.auc for m in fp32]):.4f}, GAUC "
                     f"{np.mean([m.gauc for m in fp32]):.4f} (mean of {len(fp32)} seeds; "
                     f"seed-to-seed sd of AUC {100 * np.std([m.auc for m in fp32], ddof=1):.2f} "
                     f"pt)")
    first = trained_too.deltas["auc"]
    body = (f"`tiny` simulation with {args.users:,} users (seed {args.sim_seed}), BASE and MoAE "
            f"(auxiliary {', '.join(MODELS['moae'])}) on the last-click target at the default "
            f"options, seeds {', '.join(map(str, args.seeds))}; test day: "
            f"{trained_too.rows:,} rows of {first.users:,} users. Δ = bf16 − float32 "
            f"in points (× 100), mean over seeds, with the 95 % interval of a paired bootstrap "
            f"over the test users and the seeds ({first.resamples:,} resamples, "
            f"`malt.eval.compare`). {'; '.join(means)}. The machine's 2 cores were shared with "
            f"other jobs (load average at the end: {os.getloadavg()[0]:.2f}); accuracy does "
            f"not depend on it.\n\n" + "\n".join(lines))
    publish("bf16 accuracy", "bench_precision_accuracy", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
