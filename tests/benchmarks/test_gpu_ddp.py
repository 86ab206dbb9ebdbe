"""The GPU check's DDP step (`benchmarks.gpu_ddp`): how its ranks share one GPU. (Its parity
check runs in the dry run of tests/benchmarks/test_gpu_check.py.)"""

from __future__ import annotations

import benchmarks.gpu_ddp as gpu_ddp
import pytest
import torch
import torch.distributed as dist

import malt.cli


@pytest.fixture
def launched(monkeypatch):
    """A rank as torchrun starts it (rank 1 of 2), with `malt train` and the process group
    recorded instead of run."""
    calls: dict = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "init_process_group",
                        lambda backend: calls.setdefault("backend", backend))
    monkeypatch.setattr(malt.cli, "main", lambda argv: calls.setdefault("argv", argv) and 0)
    return calls


@pytest.mark.parametrize("gpus, shared", [(1, True), (2, False)])
def test_ranks_share_a_single_gpu_through_gloo_and_take_one_each_otherwise(
        launched, monkeypatch, gpus, shared):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert gpu_ddp.main(["--rank", "--config", "c.json", "--out", "run"]) == 0
    assert launched["argv"] == ["train", "--config", "c.json", "--out", "run"]
    assert launched.get("backend") == ("gloo" if shared else None)
    assert gpu_ddp.os.environ["LOCAL_RANK"] == ("0" if shared else "1")
    assert ("gloo" in gpu_ddp.backend("cuda")) == shared


def test_on_the_cpu_malt_sets_up_the_ranks_itself(launched, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu_ddp.main(["--rank", "--config", "c.json", "--out", "run"])
    assert "backend" not in launched and gpu_ddp.os.environ["LOCAL_RANK"] == "1"
