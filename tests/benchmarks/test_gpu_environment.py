"""The GPU check's first step (`benchmarks.gpu_environment`) names what the machine lacks."""

from __future__ import annotations

import benchmarks.gpu_environment as gpu_environment
import torch


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(gpu_environment, "PACKAGES", ("numpy", "no-such-package-malt"))
    ok, figures, problems = gpu_environment.environment(dry_run=True)
    assert not ok
    assert figures["packages"]["numpy"] == __import__("numpy").__version__
    assert figures["packages"]["no-such-package-malt"] is None
    assert problems == ["package no-such-package-malt is missing"]


def test_a_dry_run_needs_no_gpu_and_a_real_run_does(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_environment.environment(dry_run=True)[0]
    ok, figures, problems = gpu_environment.environment(dry_run=False)
    assert not ok and figures["cuda_available"] is False and figures["gpus"] == 0
    assert len(problems) == 1 and "sees no CUDA GPU" in problems[0]
