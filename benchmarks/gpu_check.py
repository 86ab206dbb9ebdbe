"""The GPU check: on a machine with CUDA, in under 10 minutes, the CUDA tests, training and
scoring of BASE and MoAE at MAC-scale tables against the GPU's matmul floor, two-process DDP
parity and `--compile` against eager, written as files for BENCHMARKS.md.

    python -m benchmarks.gpu_check [--out DIR] [--dry-run]     # on the GPU machine
    python -m benchmarks.gpu_check --merge DIR                  # here: DIR's section into
                                                                # BENCHMARKS.md

Each step runs in its own process (group) under a hard time budget: a step that fails or runs
over its budget is cut and reported, and the next one runs. The output directory (--out, else
$OUT, else ./gpu-check) gets `gpu_check.json` (every step's status and figures),
`gpu_check.md` (the section's body) and `steps/` (each step's result and log). `--dry-run` runs
the same steps on the CPU with tiny sizes. See docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.gpu_results import RUN_VARIABLE, read_result
from benchmarks.report import BENCHMARKS_MD, machine, update_section
from malt.outputs import atomic_write_text

SECTION = "GPU check"
TOTAL_BUDGET_S = 570.0
"""The whole check's bound: 30 s short of the device machine's 10 minutes per command."""
DRY_RUN_STEP_S = 240.0
"""A dry-run step's bound: the whole check's still holds them all."""
GRACE_S = 5.0
"""How long a step over its budget has to end after SIGTERM before SIGKILL (torchrun passes the
SIGTERM on to its ranks)."""


@dataclass(frozen=True)
class Step:
    """One step: its command and its time budget in seconds."""

    name: str
    argv: list[str]
    budget_s: float


@dataclass(frozen=True)
class Outcome:
    """What became of a step: `passed`, `failed`, `timed out` or `skipped`."""

    name: str
    status: str
    seconds: float
    budget_s: float
    detail: str = ""
    figures: dict | None = None
    report: str = ""


def planned_steps(out: Path, dry_run: bool, seed: int) -> list[Step]:
    """The check's steps in order, with their budgets (on the GPU; a dry run's are bounds for a
    2-core CPU busy with other tests, where one step can take minutes)."""
    flags = ["--out", str(out), "--seed", str(seed)] + (["--dry-run"] if dry_run else [])
    modules = {"environment": ("gpu_environment", 45), "cuda-tests": ("gpu_steps", 120),
               "train-score": ("gpu_steps", 140), "ddp": ("gpu_ddp", 100),
               "compile": ("gpu_steps", 150)}
    return [Step(name, [sys.executable, "-m", f"benchmarks.{module}",
                        *([name] if module == "gpu_steps" else []), *flags],
                 DRY_RUN_STEP_S if dry_run else budget)
            for name, (module, budget) in modules.items()]


def run_step(step: Step, out: Path, budget_s: float) -> Outcome:
    """Run `step` in its own process group with its output in `out/steps/NAME.log`; past
    `budget_s` the group gets SIGTERM, then SIGKILL."""
    logs = out / "steps"
    logs.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex
    started = time.perf_counter()
    with open(logs / f"{step.name}.log", "w") as log:
        process = subprocess.Popen(step.argv, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env={**os.environ, RUN_VARIABLE: run})
        try:
            code = process.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            stop_group(process)
            return Outcome(step.name, "timed out", time.perf_counter() - started, budget_s,
                           f"cut after its budget of {budget_s:.0f} s",
                           **reported(out, step.name, run))
    seconds = time.perf_counter() - started
    found = reported(out, step.name, run)
    if code == 0 and found:
        return Outcome(step.name, "passed", seconds, budget_s, **found)
    detail = f"exit code {code}" + ("" if found else ", no result written") + \
        f"; last lines of its log: {log_tail(logs / f'{step.name}.log')}"
    return Outcome(step.name, "failed", seconds, budget_s, detail, **found)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group of `process`, SIGKILL after `GRACE_S`."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # any child left in the group
    except ProcessLookupError:
        pass
    process.wait()


def reported(out: Path, step: str, run: str) -> dict:
    """The figures and report `step` wrote in `run` (none when it wrote nothing)."""
    written = read_result(out, step, run)
    return {} if written is None else {"figures": written["figures"], "report": written["report"]}


def log_tail(path: Path, lines: int = 3) -> str:
    return " / ".join(line.strip() for line in path.read_text(errors="replace").splitlines()
                      [-lines:])


def run_checks(steps: list[Step], out: Path, total_budget_s: float = TOTAL_BUDGET_S
               ) -> list[Outcome]:
    """Run `steps` in order, each within its budget and what is left of `total_budget_s`; after
    a failed first step (the environment) the others are skipped."""
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    for index, step in enumerate(steps):
        left = total_budget_s - (time.perf_counter() - started)
        if index and outcomes[0].status != "passed":
            outcomes.append(Outcome(step.name, "skipped", 0.0, step.budget_s,
                                    f"the first step ({steps[0].name}) did not pass"))
        elif left < 1:
            outcomes.append(Outcome(step.name, "skipped", 0.0, step.budget_s,
                                    f"the check's {total_budget_s:.0f} s were spent"))
        else:
            outcomes.append(run_step(step, out, min(step.budget_s, left)))
        print(f"{step.name:<12} {outcomes[-1].status:<10} {outcomes[-1].seconds:6.1f} s  "
              f"{outcomes[-1].detail}", flush=True)
    return outcomes


def section_body(outcomes: list[Outcome], dry_run: bool) -> str:
    """The markdown of the check's section: a table of the steps, then each step's report."""
    lines = ["| step | status | seconds | budget s | note |", "|---|---|---:|---:|---|"]
    lines += [f"| {o.name} | {o.status} | {o.seconds:.1f} | {o.budget_s:.0f} | "
              f"{o.detail.replace('|', '/')} |" for o in outcomes]
    lead = ("**Dry run** on the CPU with tiny sizes: the pipeline, not GPU figures.\n\n"
            if dry_run else "")
    reports = [f"### {o.name}\n\n{o.report.strip()}" for o in outcomes if o.report]
    return lead + "\n".join(lines) + "\n\n" + "\n\n".join(reports) + "\n"


def write_outputs(out: Path, outcomes: list[Outcome], dry_run: bool, command: str) -> None:
    """`out/gpu_check.json` and `out/gpu_check.md`."""
    record = {"section": SECTION, "command": command, "machine": machine(), "dry_run": dry_run,
              "passed": all(o.status == "passed" for o in outcomes),
              "steps": [o.__dict__ for o in outcomes]}
    atomic_write_text(out / "gpu_check.json", json.dumps(record, indent=1))
    atomic_write_text(out / "gpu_check.md", section_body(outcomes, dry_run))


def merge(results: Path, benchmarks: Path) -> None:
    """Publish the check in `results` as its section of `benchmarks`, with the GPU machine's
    description and command; a dry run is refused."""
    record = json.loads((results / "gpu_check.json").read_text())
    if record["dry_run"]:
        raise SystemExit(f"{results} holds a dry run (CPU, tiny sizes): not merged into "
                         f"{benchmarks}")
    update_section(SECTION, record["command"], (results / "gpu_check.md").read_text(),
                   machine_line=record["machine"], path=benchmarks)
    print(f"section '{SECTION}' of {benchmarks} written from {results}")


def default_out() -> Path:
    return Path(os.environ.get("OUT") or "gpu-check")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: $OUT, else ./gpu-check)")
    parser.add_argument("--dry-run", action="store_true",
                        help="the same steps on the CPU with tiny sizes")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--merge", type=Path, metavar="DIR",
                        help="publish DIR's results into BENCHMARKS.md instead of running")
    parser.add_argument("--benchmarks", type=Path, default=BENCHMARKS_MD,
                        help="the file --merge writes (default: the repository's BENCHMARKS.md)")
    args = parser.parse_args(argv)
    if args.merge is not None:
        merge(args.merge, args.benchmarks)
        return 0
    out = args.out or default_out()
    out.mkdir(parents=True, exist_ok=True)
    outcomes = run_checks(planned_steps(out, args.dry_run, args.seed), out)
    command = "python -m benchmarks.gpu_check" + (" --dry-run" if args.dry_run else "")
    write_outputs(out, outcomes, args.dry_run, command)
    print((out / "gpu_check.md").read_text() + f"\nresults in {out}", flush=True)
    return 0 if all(o.status == "passed" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
