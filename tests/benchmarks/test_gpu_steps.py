"""The GPU check's steps (`benchmarks.gpu_steps`): which tests it runs and how it reads them."""

from __future__ import annotations

from pathlib import Path

from benchmarks.gpu_steps import cuda_test_files, junit_outcomes

TESTS = Path(__file__).resolve().parents[1]

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.a" name="test_ok" time="0.1"/>
<testcase classname="tests.a" name="test_bad[1]" time="0.1">
  <failure message="assert 1 == 2&#10;second line">trace</failure></testcase>
<testcase classname="tests.b" name="test_gpu" time="0"><skipped message="needs CUDA"/></testcase>
<testcase classname="tests.b" name="test_broken" time="0"><error message="">trace</error></testcase>
</testsuite></testsuites>"""


def test_the_cuda_tests_are_the_files_with_the_marker():
    files = cuda_test_files()
    assert TESTS / "data" / "test_batches.py" in files
    assert TESTS / "training" / "test_trainer.py" in files
    assert TESTS / "training" / "test_optim.py" not in files
    assert all("@pytest.mark.cuda" in f.read_text() for f in files)


def test_a_junit_report_gives_each_tests_outcome_and_first_message_line(tmp_path):
    (tmp_path / "junit.xml").write_text(JUNIT)
    assert junit_outcomes(tmp_path / "junit.xml") == {
        "tests.a::test_ok": ("passed", ""),
        "tests.a::test_bad[1]": ("failure", "assert 1 == 2"),
        "tests.b::test_gpu": ("skipped", "needs CUDA"),
        "tests.b::test_broken": ("error", "")}
