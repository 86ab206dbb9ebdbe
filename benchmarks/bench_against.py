"""Training steps of this checkout against a git revision of malt, in alternating rounds, each
as a fraction of the matmul floor measured in the same process.

    python -m benchmarks.bench_against --baseline main [--rounds 3] [--steps 4] [--threads 2]

The baseline's `src/` is exported (`git archive`) into a temporary folder; each round runs one
worker process per source tree, in ABBA order, so that load from other processes on a shared
machine falls on both alike. A worker times full steps (`benchmarks.bench_scale`: forward, the
losses, backward, row-wise Adam on the tables) of BASE and MoAE at the `small` and the
MAC-scale tables, median of `--steps` after one warm-up step, and the floor's product (sgemm at
batch x 336 x 256) next to them; with one thread (`--threads 1`) in the thread's CPU time, which
other processes on a shared machine do not inflate, else in wall time. The figure that compares
the trees is the median over rounds of each round's ratio, this checkout / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.report import parse_arguments, publish

ROOT = Path(__file__).resolve().parent.parent
CASES = (("base", "small"), ("moae", "small"), ("base", "MAC-scale"), ("moae", "MAC-scale"))


def worker(args: argparse.Namespace) -> None:
    """Time every case with the malt this process imports; print {case: [samples/s, floor]}."""
    from benchmarks.bench_scale import (
        mac_vocab,
        median_step_seconds,
        synthetic_batch,
        training_setup,
    )
    from malt.data.vocab import VocabInfo

    # One thread: the thread's CPU time, which other processes do not inflate; more: wall time.
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter

    small = json.loads(Path(args.small_vocab).read_text())
    vocabs = {"small": VocabInfo(small["sizes"], small["sequence_pad"]),
              "MAC-scale": mac_vocab()}
    figures = {}
    for name, tables in CASES:
        vocab = vocabs[tables]
        batch = synthetic_batch(vocab, args.batch, args.seed)
        model, task, optimisation = training_setup(name, vocab, "rows", seed=args.seed)
        a, b = torch.randn(args.batch, 336), torch.randn(336, 256)
        rate = 2 * args.batch * 336 * 256 / min(timed(clock, lambda: a @ b) for _ in range(10))
        seconds = median_step_seconds(model, task, optimisation, batch, args.steps, clock)
        floor = rate / (6 * model.parameter_counts()[0])
        figures[f"{name} {tables}"] = [args.batch / seconds, floor]
        del model, optimisation
    print(json.dumps(figures))


def timed(clock, fn) -> float:
    started = clock()
    fn()
    return clock() - started


def baseline_source(revision: str, into: Path) -> Path:
    """`src/` of `revision` exported into `into`: the folder to put on PYTHONPATH."""
    archive = into / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], stdout=out,
                       check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_worker(src: Path, args: argparse.Namespace, small_vocab: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(ROOT)])}
    command = [sys.executable, "-m", "benchmarks.bench_against", "--worker",
               "--small-vocab", str(small_vocab), "--batch", str(args.batch),
               "--steps", str(args.steps), "--seed", str(args.seed)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--small-vocab", help=argparse.SUPPRESS)
    parser.add_argument("--section", default="this checkout against main",
                        help="BENCHMARKS.md section to publish into")
    args = parse_arguments(parser, argv)
    if args.worker:
        worker(args)
        return
    from benchmarks.bench_scale import small_vocab

    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                              check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        vocab = small_vocab()
        vocab_file = Path(tmp) / "small.json"
        vocab_file.write_text(json.dumps(vocab.to_dict()))
        trees = {"baseline": baseline_source(args.baseline, Path(tmp)), "this": ROOT / "src"}
        runs: dict[str, list[dict]] = {"baseline": [], "this": []}
        loads = []
        for r in range(args.rounds):
            order = ("baseline", "this") if r % 2 == 0 else ("this", "baseline")
            for tree in order:
                runs[tree].append(run_worker(trees[tree], args, vocab_file))
                loads.append(os.getloadavg()[0])
                print(tree, {k: round(v[0]) for k, v in runs[tree][-1].items()}, flush=True)
    lines = ["| model | tables | baseline samples/s | of floor | this samples/s | of floor | "
             "this / baseline (per round) |", "|---|---|---:|---:|---:|---:|---|"]
    for case in runs["this"][0]:
        figures = {tree: [round_[case] for round_ in runs[tree]] for tree in runs}
        ratios = [t[0] / b[0] for t, b in zip(figures["this"], figures["baseline"])]
        cells = []
        for tree in ("baseline", "this"):
            rate = statistics.median(f[0] for f in figures[tree])
            floor = statistics.median(f[1] for f in figures[tree])
            cells += [f"{rate:,.0f}", f"{rate / floor:.0%}"]
        lines.append(f"| {case.replace(' ', ' | ')} | {' | '.join(cells)} | "
                     f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)}) |")
    body = (f"Baseline: `{args.baseline}` at {revision}. {args.rounds} rounds, each one worker "
            f"process per tree in ABBA order; a worker times full training steps at batch "
            f"{args.batch} (row-wise Adam on the tables, synthetic ids uniform over each table, "
            f"tables as in \"training at scale\"), median of {args.steps} after one warm-up "
            f"step, and the floor (sgemm at {args.batch} x 336 x 256 / (6 x dense parameters)) "
            f"in the same process; samples/s and floors are medians over rounds. "
            f"{torch.get_num_threads()} torch thread(s), "
            f"{'CPU time of the thread' if torch.get_num_threads() == 1 else 'wall time'}. "
            f"Load average after each worker: "
            f"{min(loads):.1f} to {max(loads):.1f}.\n\n" + "\n".join(lines))
    publish(args.section, "bench_against", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
