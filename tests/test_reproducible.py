"""MKL's reproducible mode: set by `import malt`, kept when the user chose one, and a training
run says so when torch computed before malt could set it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from malt.reproducible import REPRODUCIBLE, VARIABLE, mkl_reproducible

needs_mkl = pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="needs MKL")

# One-output layers at every start address of a 64-byte line: MKL's matrix-vector kernel
# (without its reproducible mode) sums in another order when its input is not 16-byte aligned.
PROBE = """
import sys
import torch
torch.manual_seed(0)
weight, rows = torch.randn(1, 64), torch.randn(256, 64)
outputs = []
for offset in range(16):
    memory = torch.empty(rows.numel() + 16)
    moved = memory[offset:offset + rows.numel()].view_as(rows)
    moved.copy_(rows)
    outputs.append(torch.nn.functional.linear(moved, weight))
print(sum(not torch.equal(out, outputs[0]) for out in outputs))
from malt.reproducible import mkl_reproducible
print(mkl_reproducible())
"""


def _probe(first: str, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-c", first + PROBE], capture_output=True, text=True,
                          env={**os.environ, **env}, check=True)
    differing, mode = done.stdout.split()
    return int(differing), mode


@needs_mkl
def test_import_malt_makes_every_alignment_give_the_same_bits(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    assert _probe("import malt\n", {}) == (0, "True")


@needs_mkl
def test_the_test_suite_itself_runs_in_the_reproducible_mode():
    assert os.environ[VARIABLE] == REPRODUCIBLE and mkl_reproducible() is True


@needs_mkl
def test_mkl_computing_before_malt_is_imported_is_detected(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    first = "import torch\ntorch.randn(4, 4) @ torch.randn(4, 1)\nimport malt\n"
    assert _probe(first, {})[1] == "False"


def test_a_users_own_setting_is_kept(monkeypatch):
    monkeypatch.setenv(VARIABLE, "COMPATIBLE")
    show = f"import malt, os; print(os.environ['{VARIABLE}'])"
    done = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "COMPATIBLE"


def test_training_warns_when_mkl_is_not_reproducible(monkeypatch, caplog, random_mac, tmp_path):
    import malt.training.trainer as trainer_module
    from malt.jobs.train import train_run
    from malt.runs.config import RunConfig

    monkeypatch.setattr(trainer_module, "mkl_reproducible", lambda: False)
    config = RunConfig.from_dict({"data": {"path": str(random_mac)}, "task": {"aux": []},
                                  "model": {"name": "base", "encoder": {"embed_dim": 4}},
                                  "train": {"batch_size": 512}})
    with caplog.at_level(logging.WARNING, logger="malt.training.trainer"):
        train_run(config, tmp_path / "run")
    assert f"{VARIABLE}=AUTO,STRICT" in caplog.text
