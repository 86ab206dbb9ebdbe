"""Does the same seed give the same bits? Train BASE and MoAE on a tiny simulated data set
again and again, and count the runs that are bit-identical to the first one.

    python scripts/reproducibility.py                     # MKL as malt sets it
    python scripts/reproducibility.py --mkl both          # ... and with MKL's reproducibility off
    python scripts/reproducibility.py --repeats 5 --resumes 5 --jobs 2 --seed 0

For each model and MKL mode: `--repeats` runs at 1 torch thread and as many at 2, and
`--resumes` runs stopped at a random step (SIGKILL, so the run restarts from its last day's
checkpoint, or Ctrl-C, which saves the step it is at; alternately) and resumed with
`malt train --resume`. A run is identical when its predictions on the test day, its model's
parameters and its optimiser's state have the same bits as the first run's at its thread count
(a resumed run: the first 1-thread run's), and every step's losses too (TensorBoard, one value
per step): a run that differs names its first differing step. The first runs at 1 and at 2
threads are compared with each other too. `--jobs` runs that many at once, so that each runs
beside another as the test suite's do. `--mkl off` sets `MKL_CBWR` to an empty value, which malt
keeps and MKL reads as "off": the runs then show what MKL's alignment-dependent kernels do on
this CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "tests" / "support" / "faults.py"
DAYS, USERS, BATCH = 4, 1500, 256
MODELS = {
    "base": ["--model", "base"],
    "moae": ["--model", "moae", "--aux", "first", "linear", "mta"],
}
SMALL = ["--model-option", "encoder.embed_dim=8", "--model-option", "encoder.attention_heads=2"]
MKL_MODES = {"reproducible": None, "off": ""}
"""`MKL_CBWR` per mode: None leaves malt's default (AUTO,STRICT); empty turns MKL's off."""


@dataclass(frozen=True)
class Job:
    model: str
    mkl: str
    kind: str
    """`repeat-1`, `repeat-2` (threads) or `resume`."""
    index: int
    stop: tuple[str, int] | None = None
    """For a resumed run: how it is stopped (`kill` or `interrupt`) and after which step."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resumes", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the stop points")
    parser.add_argument("--mkl", choices=[*MKL_MODES, "both"], default="reproducible")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--work", type=Path, help="directory for data and runs (default: temp)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="malt-repro-"))
    data = work / "data"
    if not data.exists():
        _malt(["simulate", "--size", "tiny", "--users", str(USERS), "--days", str(DAYS),
               "--seed", "1", "--out", str(data)])
    steps = _steps_per_run(data)
    picker = random.Random(args.seed)
    modes = list(MKL_MODES) if args.mkl == "both" else [args.mkl]
    jobs = []
    for model in args.models:
        for mkl in modes:
            jobs += [Job(model, mkl, f"repeat-{threads}", i)
                     for threads in (1, 2) for i in range(args.repeats)]
            jobs += [Job(model, mkl, "resume", i,
                         (("kill", "interrupt")[i % 2], picker.randint(1, steps - 1)))
                     for i in range(args.resumes)]
    with ThreadPoolExecutor(args.jobs) as pool:
        prints = dict(zip(jobs, pool.map(lambda job: _run(job, data, work), jobs)))
    print(f"CPU: {_cpu()}; torch threads 1 and 2; {args.jobs} runs at a time; "
          f"{steps} steps per run")
    for model in args.models:
        for mkl in modes:
            _report(model, mkl, {job: p for job, p in prints.items()
                                 if job.model == model and job.mkl == mkl})


def _run(job: Job, data: Path, work: Path) -> dict:
    out = work / "runs" / f"{job.model}-{job.mkl}-{job.kind}-{job.index}"
    args = ["train", "--data", str(data), *MODELS[job.model], *SMALL, "--batch-size", str(BATCH),
            "--shuffle", "--seed", "7", "--log-every", "1", "--out", str(out), "--overwrite"]
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "2" if job.kind == "repeat-2" else "1"
    if MKL_MODES[job.mkl] is not None:
        env["MKL_CBWR"] = MKL_MODES[job.mkl]
    if job.stop is None:
        _malt(args, env)
    else:
        action, step = job.stop
        stopped = subprocess.run([sys.executable, str(FAULTS), "step", str(step), action, "--",
                                  *args], env=env, capture_output=True, text=True,
                                 start_new_session=True)
        expected = -signal.SIGKILL if action == "kill" else 130
        if stopped.returncode != expected:
            raise SystemExit(f"{out}: stopped with {stopped.returncode}\n{stopped.stderr}")
        _malt(["train", "--resume", "--out", str(out)], env)
    return _fingerprint(out)


def _fingerprint(run: Path) -> dict:
    """Hashes of what a run computed (not its clock times), and its per-step losses."""
    import numpy as np
    from safetensors import safe_open
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with safe_open(str(run / "checkpoint.safetensors"), "pt") as tensors:
        state = hashlib.sha256()
        for name in sorted(tensors.keys()):
            state.update(name.encode() + tensors.get_tensor(name).numpy().tobytes())
    with np.load(run / "predictions.npz", allow_pickle=False) as saved:
        predictions = hashlib.sha256(saved["probs"].tobytes()).hexdigest()
    # Kept in file order, not purged at a resume: a step written again replaces the earlier.
    events = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0},
                              purge_orphaned_data=False)
    events.Reload()
    losses: dict[int, dict[str, float]] = {}
    for tag in (t for t in events.Tags()["scalars"] if t.startswith("loss/")):
        for event in events.Scalars(tag):
            losses.setdefault(event.step, {})[tag] = event.value
    return {"state": state.hexdigest(), "predictions": predictions, "losses": losses}


def _report(model: str, mkl: str, prints: dict[Job, dict]) -> None:
    """Repeats are compared with the first run at their thread count, resumed runs (1 thread)
    with the first 1-thread run."""
    first = {kind: next(p for job, p in prints.items() if job.kind == kind and job.index == 0)
             for kind in ("repeat-1", "repeat-2")}
    reference = {"repeat-1": first["repeat-1"], "repeat-2": first["repeat-2"],
                 "resume": first["repeat-1"]}
    print(f"\n{model}, MKL {mkl}:")
    counts = {}
    for kind in ("repeat-1", "repeat-2", "resume"):
        runs = [(job, p) for job, p in prints.items() if job.kind == kind]
        same = [job for job, p in runs if _same(p, reference[kind])]
        counts[kind] = [len(same), len(runs)]
        line = f"  {kind:9s} {len(same)}/{len(runs)} bit-identical"
        for job, p in runs:
            if job not in same:
                stop = f", stopped by {job.stop[0]} after step {job.stop[1]}" if job.stop else ""
                line += (f"\n    run {job.index}{stop}: first differing step "
                         f"{_first_difference(p, reference[kind])}")
        print(line)
    across = _first_difference(first["repeat-2"], first["repeat-1"])
    verdict = "bit-identical" if across is None else f"first differing step {across}"
    print(f"  1 vs 2 threads: {verdict}")
    print(json.dumps({"model": model, "mkl": mkl, "identical": counts,
                      "threads_1_vs_2_identical": across is None}))


def _same(a: dict, b: dict) -> bool:
    return a["state"] == b["state"] and a["predictions"] == b["predictions"] \
        and _first_difference(a, b) is None


def _first_difference(a: dict, b: dict) -> int | str | None:
    for step in sorted(b["losses"]):
        if a["losses"].get(step) != b["losses"][step]:
            return step
    if a["state"] != b["state"]:
        return "none in the losses; the final parameters differ"
    if a["predictions"] != b["predictions"]:
        return "none in the losses; the predictions differ"
    return None


def _steps_per_run(data: Path) -> int:
    import pyarrow.parquet as pq

    days = sorted((data / "train").glob("*.parquet"))
    return sum(-(-pq.ParquetFile(day).metadata.num_rows // BATCH) for day in days)


def _malt(args: list[str], env: dict | None = None) -> None:
    done = subprocess.run([sys.executable, "-m", "malt", *args], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"malt {' '.join(args)} failed:\n{done.stderr}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
