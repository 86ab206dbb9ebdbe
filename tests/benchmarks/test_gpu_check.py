"""The GPU check (`benchmarks.gpu_check`) without a GPU: its steps under their budgets, its dry
run end to end, and the merge of its section into BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from benchmarks.gpu_check import Outcome, Step, merge, run_checks, write_outputs
from benchmarks.gpu_steps import cuda_test_files

ROOT = Path(__file__).resolve().parents[2]


def python_step(name: str, code: str, budget_s: float = 60) -> Step:
    return Step(name, [sys.executable, "-c", code], budget_s)


def writes_result(out: Path, name: str) -> str:
    """Code of a step that reports `ok` with one figure, as the real steps do."""
    return ("from pathlib import Path; from benchmarks.gpu_results import write_result; "
            f"write_result(Path({str(out)!r}), {name!r}, True, {{'answer': 42}}, '{name} ran')")


def running(pid: int) -> bool:
    """Whether process `pid` runs (a killed one may stay a zombie until its parent reaps it)."""
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_a_failing_step_is_reported_and_the_next_steps_still_run(tmp_path):
    steps = [python_step("first", writes_result(tmp_path, "first")),
             python_step("broken", "import sys; print('went wrong'); sys.exit(3)"),
             python_step("after", writes_result(tmp_path, "after"))]
    outcomes = run_checks(steps, tmp_path)
    assert [o.status for o in outcomes] == ["passed", "failed", "passed"]
    assert "exit code 3" in outcomes[1].detail and "went wrong" in outcomes[1].detail
    assert outcomes[2].figures == {"answer": 42}
    assert (tmp_path / "steps" / "broken.log").read_text() == "went wrong\n"


def test_a_step_that_exits_cleanly_without_a_result_has_failed(tmp_path):
    outcomes = run_checks([python_step("first", writes_result(tmp_path, "first")),
                           python_step("silent", "pass")], tmp_path)
    assert outcomes[1].status == "failed"
    assert "no result written" in outcomes[1].detail


def test_a_step_over_its_budget_is_cut_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    # The step starts a child that would outlive it, as torchrun's ranks would.
    code = ("import subprocess, sys, time, pathlib; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid)); time.sleep(120)")
    outcomes = run_checks([python_step("first", writes_result(tmp_path, "first")),
                           Step("hangs", [sys.executable, "-c", code], 3),
                           python_step("after", writes_result(tmp_path, "after"))], tmp_path)
    assert [o.status for o in outcomes] == ["passed", "timed out", "passed"]
    assert "cut after its budget of 3 s" in outcomes[1].detail
    assert not running(int(pid_file.read_text()))


def test_a_cut_step_keeps_the_figures_it_saved(tmp_path):
    code = writes_result(tmp_path, "partial") + "; import time; time.sleep(120)"
    outcomes = run_checks([python_step("first", writes_result(tmp_path, "first")),
                           Step("partial", [sys.executable, "-c", code], 3)], tmp_path)
    assert outcomes[1].status == "timed out"
    assert outcomes[1].report == "partial ran"


def test_a_result_left_by_an_earlier_check_is_not_taken_for_this_ones(tmp_path):
    run_checks([python_step("first", writes_result(tmp_path, "first"))], tmp_path)
    outcomes = run_checks([python_step("first", "pass")], tmp_path)
    assert outcomes[0].status == "failed" and outcomes[0].figures is None


def test_after_a_failed_first_step_and_past_the_total_budget_the_rest_is_skipped(tmp_path):
    outcomes = run_checks([python_step("environment", "raise SystemExit(1)"),
                           python_step("next", writes_result(tmp_path, "next"))], tmp_path)
    assert [o.status for o in outcomes] == ["failed", "skipped"]
    assert "first step (environment) did not pass" in outcomes[1].detail
    spent = run_checks([python_step("a", "pass")], tmp_path, total_budget_s=0)
    assert spent[0].status == "skipped" and "were spent" in spent[0].detail


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine "
                    "without CUDA")
def test_without_cuda_the_check_stops_at_the_environment_and_says_why(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["dry_run"] is False and record["passed"] is False
    assert [s["status"] for s in record["steps"]] == ["failed"] + ["skipped"] * 4
    assert "sees no CUDA GPU" in (tmp_path / "steps" / "environment.log").read_text()


def fake_outcomes() -> list[Outcome]:
    return [Outcome("environment", "passed", 1.0, 30, figures={"gpu": "H100"},
                    report="Environment: H100."),
            Outcome("compile", "timed out", 150.0, 150, "cut after its budget of 150 s")]


def test_merge_replaces_the_section_and_keeps_the_others(tmp_path):
    results = tmp_path / "out"
    results.mkdir()
    write_outputs(results, fake_outcomes(), dry_run=False, command="python -m x")
    record = json.loads((results / "gpu_check.json").read_text())
    record["machine"] = "the GPU machine"
    (results / "gpu_check.json").write_text(json.dumps(record))
    benchmarks = tmp_path / "BENCHMARKS.md"
    other = "<!-- bench:GAUC -->\n## GAUC\n\nkept\n<!-- /bench:GAUC -->\n"
    benchmarks.write_text("# Benchmarks\n\n" + other)
    merge(results, benchmarks)
    merge(results, benchmarks)  # a second merge replaces, it does not append
    text = benchmarks.read_text()
    assert other in text
    assert text.count("<!-- bench:GPU check -->") == 1
    section = text.split("<!-- bench:GPU check -->")[1]
    assert "Machine: the GPU machine" in section and "Command: `python -m x`" in section
    assert "| compile | timed out | 150.0 | 150 | cut after its budget of 150 s |" in section
    assert "### environment\n\nEnvironment: H100." in section


def test_merge_refuses_a_dry_run(tmp_path):
    write_outputs(tmp_path, fake_outcomes(), dry_run=True, command="python -m x")
    benchmarks = tmp_path / "BENCHMARKS.md"
    with pytest.raises(SystemExit, match="holds a dry run"):
        merge(tmp_path, benchmarks)
    assert not benchmarks.exists()


@pytest.mark.slow
def test_the_dry_run_runs_every_step_and_writes_the_section(tmp_path):
    """The whole pipeline on the CPU (about a minute on 2 cores)."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--dry-run"],
                          cwd=ROOT, env={**os.environ, "OUT": str(tmp_path)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["dry_run"] is True and record["passed"] is True
    steps = {s["name"]: s for s in record["steps"]}
    assert list(steps) == ["environment", "cuda-tests", "train-score", "ddp", "compile"]
    cuda_tests = steps["cuda-tests"]["figures"]
    assert cuda_tests["counts"]["skipped"] == len(cuda_tests["tests"]) >= len(cuda_test_files())
    results = steps["train-score"]["figures"]["results"]
    assert [(r["name"], r["precision"]) for r in results] == [
        ("base", "fp32"), ("base", "bf16"), ("moae", "fp32"), ("moae", "bf16")]
    assert all(r["train_samples_s"] > 0 and r["score_rows_s"] > 0 for r in results)
    ddp = steps["ddp"]["figures"]
    assert ddp["world_size"] == 2 and ddp["predictions"] <= ddp["tolerance"]
    assert all(r["compiled"] and r["matches"] for r in steps["compile"]["figures"]["results"])
    section = (tmp_path / "gpu_check.md").read_text()
    assert section.startswith("**Dry run**")
    for name in steps:
        assert f"\n| {name} | passed |" in section and f"### {name}\n" in section
        assert (tmp_path / "steps" / f"{name}.log").exists()
