"""The steps of `benchmarks.gpu_check`, one per process: the CUDA tests, training and scoring at
MAC-scale tables against the GPU's matmul floor, and `--compile` against eager. (The first
step is `benchmarks.gpu_environment`; the DDP parity step is `benchmarks.gpu_ddp`.)

    python -m benchmarks.gpu_steps STEP --out DIR [--dry-run] [--seed N]

Each step writes `DIR/steps/STEP.json`: `ok`, its `figures` and a markdown `report` (a
subsection of the GPU check's section of BENCHMARKS.md); it exits 1 when its check fails. With
`--dry-run` the same code runs on the CPU with tiny sizes (what the tests exercise).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.bench_models import task_for
from benchmarks.bench_scale import MAC_TABLES, mac_vocab, synthetic_batch
from benchmarks.gpu_results import write_result
from malt.data.schema import MAC
from malt.data.vocab import VocabInfo
from malt.deploy.engines import TorchEngine
from malt.deploy.serving import ServingModule
from malt.precision import as_float32, autocast
from malt.runs.config import RunConfig
from malt.training.compiled import compile_forward
from malt.training.optim import Optimisation

MODELS = ("base", "moae")
TESTS = Path(__file__).resolve().parent.parent / "tests"
CUDA_MARKER = "pytest.mark.cuda"


@dataclass(frozen=True)
class Sizes:
    """How much work a step does: the real sizes on a GPU, tiny ones for a dry run on the CPU."""

    device: str
    batches: tuple[int, ...]
    steps: int
    score_rows: int
    table_rows: int | None  # None: MAC-scale tables; else this many rows in every table
    matmul: int  # the side of the square products that measure the floor

    @property
    def vocab(self) -> VocabInfo:
        if self.table_rows is None:
            return mac_vocab()
        return VocabInfo(dict.fromkeys(MAC.field_names, self.table_rows),
                         {s.name: 0 for s in MAC.id_sequences})


GPU = Sizes("cuda", (4096, 32768), 10, 1 << 20, None, 8192)
DRY_RUN = Sizes("cpu", (64,), 2, 512, 1_000, 128)


Save = Callable[[bool, dict, str], None]
"""Saves a step's result so far: (ok, figures, report)."""


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def cuda_test_files() -> list[Path]:
    """The test files with tests marked `cuda` (they skip without a GPU)."""
    return sorted(p for p in TESTS.rglob("test_*.py") if CUDA_MARKER in p.read_text())


def junit_outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """Each test of a pytest JUnit report: (`passed`, `failure`, `error` or `skipped`, the first
    line of its message)."""
    outcomes = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        found = [c for c in case if c.tag in ("failure", "error", "skipped")]
        message = (found[0].get("message") or "").strip() if found else ""
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = (
            found[0].tag if found else "passed", message.splitlines()[0][:160] if message else "")
    return outcomes


def cuda_tests(sizes: Sizes, out: Path) -> tuple[bool, dict, str]:
    """The tests marked `cuda`, under pytest: on a GPU every one must pass (a skip there means
    torch did not see the GPU); in a dry run they skip."""
    junit = out / "steps" / "cuda-tests.xml"
    files = [str(p) for p in cuda_test_files()]
    # addopts= : the project's pytest options need pytest-xdist, which the GPU's Python may lack.
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
                    "addopts=", "-m", "cuda", f"--junitxml={junit}", *files], check=False)
    outcomes = junit_outcomes(junit)
    counts = {k: sum(outcome == k for outcome, _ in outcomes.values())
              for k in ("passed", "failure", "error", "skipped")}
    ok = bool(outcomes) and counts["failure"] == counts["error"] == 0 and \
        (counts["skipped"] == 0 or sizes.device == "cpu")
    lines = ["| test | outcome |", "|---|---|"] + [
        f"| `{name}` | {outcome}{': ' if message else ''}{message.replace('|', '/')} |"
        for name, (outcome, message) in outcomes.items()]
    report = (f"CUDA tests (`pytest -m cuda`, {len(files)} files): {counts['passed']} passed, "
              f"{counts['failure']} failed, {counts['error']} errors, {counts['skipped']} "
              "skipped.\n\n" + "\n".join(lines))
    return ok, {"counts": counts, "tests": {k: v[0] for k, v in outcomes.items()},
                "messages": {k: v[1] for k, v in outcomes.items() if v[1]}}, report


def matmul_rate(side: int, dtype: torch.dtype, device: torch.device, repeats: int = 10) -> float:
    """FLOP/s of a [side, side] x [side, side] product in `dtype` (best of `repeats`)."""
    a = torch.randn(side, side, device=device, dtype=dtype)
    b = torch.randn(side, side, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * side ** 3 / best


def training_setup(name: str, vocab: VocabInfo, device: torch.device, seed: int):
    """(model, task, optimisation) of `name` on `device` as `malt train` builds them there
    (row-wise Adam, the default: dense table gradients on CUDA, sparse on the CPU)."""
    config = RunConfig.from_dict({"model": {"name": name}, "train": {"device": device.type}})
    task = task_for(name)
    torch.manual_seed(seed)
    model = config.model_spec.build(MAC, vocab, task, config.model_config(device.type))
    model = model.to(device)
    optimisation = Optimisation(model, model.embedding_parameters(), config.train,
                                total_steps=1000,
                                sparse_tables=config.sparse_table_gradients(device.type))
    return model, task, optimisation


def timed_steps(step, steps: int, device: torch.device) -> list[float]:
    """Wall seconds of `steps` calls of `step` after one warm-up call."""
    times = []
    for i in range(steps + 1):
        synchronize(device)
        started = time.perf_counter()
        step()
        synchronize(device)
        if i:
            times.append(time.perf_counter() - started)
    return times


def train_score(sizes: Sizes, seed: int, save: Save) -> tuple[bool, dict, str]:
    """Full training steps (fp32 and bf16 autocast, as `--precision bf16`) and scoring of BASE
    and MoAE, as fractions of the matmul floor measured here, with the peak GPU memory; the
    figures are saved as they come (a step cut short keeps those it has)."""
    device = torch.device(sizes.device)
    floors = {"fp32": matmul_rate(sizes.matmul, torch.float32, device),
              "bf16": matmul_rate(sizes.matmul, torch.bfloat16, device)}
    vocab = sizes.vocab
    tables = ("MAC-scale tables (" + ", ".join(f"{f} {n:,}" for f, n in MAC_TABLES.items())
              + " rows, 1,000 for each other field)") if sizes.table_rows is None \
        else f"{sizes.table_rows:,} rows in every table"
    lead = (f"Training: full steps (forward, losses, backward, row-wise Adam as `malt train` "
            f"runs it on {device.type}), median of {sizes.steps} after one warm-up, synthetic "
            f"ids over {tables}; bf16 = autocast as `--precision bf16`. Scoring: `malt "
            f"predict`'s torch engine (arrays in, probabilities out, transfers included) on "
            f"{sizes.score_rows:,} rows in calls of the batch's rows. Floor = a "
            f"{sizes.matmul}³ matmul ({floors['fp32'] / 1e12:.3g} TFLOP/s fp32 without TF32, "
            f"{floors['bf16'] / 1e12:.3g} bf16, measured here) / (6 x dense parameters) for "
            "training, / (2 x dense parameters) for scoring. Peak memory: the model's training "
            "and scoring.\n\n")
    rows = ["| model | batch | precision | train samples/s | of floor | score rows/s | of "
            "floor | peak memory GiB |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    figures: dict = {"matmul_flops": floors, "results": []}
    for name in MODELS:
        for batch_rows in sizes.batches:
            batch = {k: v.to(device) for k, v in
                     synthetic_batch(vocab, batch_rows, seed).items()}
            for precision in ("fp32", "bf16"):
                result = measure_model(name, vocab, batch, precision, sizes, seed)
                floor = floors[precision] / (6 * result["dense_parameters"])
                score_floor = floors[precision] / (2 * result["dense_parameters"])
                result |= {"name": name, "batch": batch_rows, "precision": precision,
                           "train_of_floor": result["train_samples_s"] / floor,
                           "score_of_floor": result["score_rows_s"] / score_floor}
                figures["results"].append(result)
                print(json.dumps(result), flush=True)
                rows.append(f"| {name} | {batch_rows:,} | {precision} | "
                            f"{result['train_samples_s']:,.0f} | {result['train_of_floor']:.1%} "
                            f"| {result['score_rows_s']:,.0f} | {result['score_of_floor']:.1%} "
                            f"| {result['peak_memory_gib']:.2f} |")
                save(False, figures, lead + "\n".join(rows))
    return True, figures, lead + "\n".join(rows)


def measure_model(name: str, vocab: VocabInfo, batch: dict, precision: str, sizes: Sizes,
                  seed: int) -> dict:
    """Training samples/s, scoring rows/s and the peak GPU memory of one model."""
    device = batch["labels"].device
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, task, optimisation = training_setup(name, vocab, device, seed)
    def train_step():
        with autocast(precision, device):  # the forward, as the trainer autocasts it
            outputs = model(batch)
        total = model.loss_terms(as_float32(outputs), batch).total(task.aux_weight)
        total.backward()
        optimisation.step()
        optimisation.zero_grad()

    model.train()
    train = statistics.median(timed_steps(train_step, sizes.steps, device))
    engine = TorchEngine(ServingModule(model), device, precision)
    inputs = {k: v.cpu().numpy() for k, v in batch.items()}
    calls = max(1, sizes.score_rows // len(batch["labels"]))

    def score():
        for _ in range(calls):
            engine(inputs)

    scoring = min(timed_steps(score, 2, device))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    return {"dense_parameters": model.parameter_counts()[0],
            "train_samples_s": len(batch["labels"]) / train,
            "score_rows_s": calls * len(batch["labels"]) / scoring, "peak_memory_gib": peak}


def compile_check(sizes: Sizes, seed: int, save: Save) -> tuple[bool, dict, str]:
    """`--compile` against eager for BASE and MoAE: the same losses over the same steps from
    the same weights, the compile's seconds and both speeds. A dry run compiles with dynamo's
    `eager` backend (graph capture without a C compiler)."""
    device = torch.device(sizes.device)
    compiler = torch.compile if device.type == "cuda" else \
        functools.partial(torch.compile, backend="eager")
    vocab = sizes.vocab
    batch_rows = sizes.batches[0]
    batch = {k: v.to(device) for k, v in synthetic_batch(vocab, batch_rows, seed).items()}
    backend = "inductor" if device.type == "cuda" else "dynamo's eager backend (dry run)"
    lead = (f"`--compile` ({backend}, the embedding lookups eager) against eager: full "
            f"training steps from the same weights on the same batch; loss difference = the "
            f"largest relative difference of the step losses (at most 1e-3 to pass); speeds "
            f"are medians of {sizes.steps} steps after the first.\n\n")
    rows = ["| model | batch | eager samples/s | compiled samples/s | compiled / eager | first "
            "compiled step s | max loss difference | compiled |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    figures, ok = [], True
    for name in MODELS:
        losses: dict[bool, list[float]] = {}
        rates, first, compiled_ran = {}, 0.0, False
        for compiled in (False, True):
            model, task, optimisation = training_setup(name, vocab, device, seed)
            if compiled:
                compile_forward(model, compiler)
            model.train()
            losses[compiled] = []

            def step():
                terms = model.loss_terms(model(batch), batch).total(task.aux_weight)
                terms.backward()
                optimisation.step()
                optimisation.zero_grad()
                losses[compiled].append(float(terms.detach()))

            synchronize(device)
            started = time.perf_counter()
            step()  # the compiled model's first step compiles it
            synchronize(device)
            first = time.perf_counter() - started if compiled else first
            rates[compiled] = batch_rows / statistics.median(timed_steps(step, sizes.steps,
                                                                         device))
            compiled_ran = compiled_ran or (compiled and model.forward.compiled is not None)
        steps = min(len(losses[False]), len(losses[True]))
        difference = max(abs(a - b) / max(abs(a), 1e-12)
                         for a, b in zip(losses[False][:steps], losses[True][:steps]))
        matches = difference <= 1e-3
        ok = ok and matches and compiled_ran
        result = {"name": name, "eager_samples_s": rates[False], "compiled_samples_s": rates[True],
                  "first_compiled_step_s": first, "max_relative_loss_difference": difference,
                  "compiled": compiled_ran, "matches": matches}
        figures.append(result)
        print(json.dumps(result), flush=True)
        rows.append(f"| {name} | {batch_rows:,} | {rates[False]:,.0f} | {rates[True]:,.0f} | "
                    f"{rates[True] / rates[False]:.2f} | {first:.1f} | {difference:.1e} | "
                    f"{'yes' if compiled_ran else 'no: fell back to eager'} |")
        save(False, {"results": figures}, lead + "\n".join(rows))
    return ok, {"results": figures}, lead + "\n".join(rows)


STEPS = {"cuda-tests": lambda sizes, args, save: cuda_tests(sizes, args.out),
         "train-score": lambda sizes, args, save: train_score(sizes, args.seed, save),
         "compile": lambda sizes, args, save: compile_check(sizes, args.seed, save)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=list(STEPS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same code on the CPU with tiny sizes")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    (args.out / "steps").mkdir(parents=True, exist_ok=True)
    ok, figures, report = STEPS[args.step](
        DRY_RUN if args.dry_run else GPU, args,
        functools.partial(write_result, args.out, args.step))
    write_result(args.out, args.step, ok, figures, report)
    print(report, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
