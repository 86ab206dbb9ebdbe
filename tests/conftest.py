"""Shared fixtures and test-process settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import malt  # noqa: F401  (before torch computes: it asks MKL for reproducible results)
from support.faults import CLAIMS_FOLDER
from support.mac_data import write_random_dataset

# Tests run many small ops, often two pytest workers at once on two cores: one intra-op thread
# per process avoids oversubscription, which made steps up to 30x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def fault_claims_under_pytest_tmp(tmp_path_factory) -> None:
    """`support/faults.py` makes a folder per faulted command, which a killed command cannot
    remove: keep them under pytest's own temporary folders, which pytest prunes."""
    import os

    os.environ[CLAIMS_FOLDER] = str(tmp_path_factory.mktemp("fault-claims"))


@pytest.fixture
def random_mac(tmp_path: Path) -> Path:
    return write_random_dataset(tmp_path / "mac")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` skip without a GPU (`python -m benchmarks.gpu_check` runs them on
    one)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
