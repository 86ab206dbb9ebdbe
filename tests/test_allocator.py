"""The allocator setting: freed blocks are reused without faulting their pages in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import malt.cli
from malt import allocator
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS

# Three warm-up "steps" that allocate and free two 64 MiB arrays (above glibc's largest
# adaptive mmap threshold), then the page faults of three more. numpy's plain malloc, not
# torch's 64-byte-aligned one: a freed block then always fits the next request of its size
# (an aligned request asks a little more, and glibc sometimes places it past the freed space).
MEASURE_FAULTS = """
import json, resource, numpy as np
def step():
    ones = np.ones(1 << 24, dtype=np.float32)
    return float((ones * 2)[-1])
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(json.dumps({"applied": applied,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""
REUSE_SCRIPT = """
from malt.allocator import retain_freed_memory
applied = retain_freed_memory()
""" + MEASURE_FAULTS
FRESH_PAGES = 3 * 2 * (1 << 26) // 4096
"""Pages of the three measured steps' tensors: what they fault when none is reused."""

glibc = pytest.mark.skipif(not sys.platform.startswith("linux")
                           or os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc only")


def run_script(script: str, malloc: str, *args: str) -> dict:
    """The JSON `script` prints, run with `args` in a fresh interpreter with
    `MALT_MALLOC=malloc`."""
    out = subprocess.run([sys.executable, "-c", script, *args],
                         # 4 KiB pages, so that faults count pages (numpy asks for huge ones)
                         env={**os.environ, allocator.OPT_OUT: malloc,
                              "NUMPY_MADVISE_HUGEPAGE": "0"},
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])  # what the script's calls print comes before


@glibc
def test_a_freed_block_is_reused_without_faulting_its_pages_again():
    result = run_script(REUSE_SCRIPT, "")
    assert result["applied"] is True
    assert result["faults"] < FRESH_PAGES // 10


@glibc
def test_opting_out_keeps_the_system_settings_which_fault_every_page_again():
    result = run_script(REUSE_SCRIPT, "system")
    assert result["applied"] is False
    assert result["faults"] > FRESH_PAGES * 9 // 10


def test_the_command_line_applies_the_setting_before_running_a_command(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(malt.cli, "retain_freed_memory", lambda: calls.append(True))
    assert malt.cli.main(["models"]) == 0
    assert calls == [True]


RELEASE_SCRIPT = """
import json, os, torch
from malt.allocator import release_freed_memory, retain_freed_memory
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
retain_freed_memory()
block = torch.ones(1 << 26)
del block
kept = resident_mib()
release_freed_memory()
print(json.dumps({"kept": kept, "released": resident_mib()}))
"""


@glibc
def test_releasing_hands_a_kept_block_back_to_the_system():
    resident = run_script(RELEASE_SCRIPT, "")
    assert resident["kept"] - resident["released"] > 200  # MiB, of the 256 MiB block


# The Python API in a fresh interpreter: prepare, train (two days) and score, then the steps
# of MEASURE_FAULTS under whatever malloc settings those calls left.
API_SCRIPT = """
import json, sys
import malt
from malt import allocator
data, out, blocks = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
malt.prepare(data)
run = malt.train({"seed": 1, "data": {"path": data}, "task": {"main": "last"},
                  "train": {"batch_size": 64}, "model": {"name": "base", **blocks}}, out)
run.predict(data + "/test/test.parquet")
applied = bool(allocator._applied)
""" + MEASURE_FAULTS

CLI_SCRIPT = """
import malt.cli
malt.cli.main(["models"])
from malt import allocator
applied = bool(allocator._applied)
""" + MEASURE_FAULTS


@glibc
def test_the_python_api_leaves_the_process_malloc_settings_alone(tmp_path):
    data = write_random_dataset(tmp_path / "data", days=3, rows=301)
    result = run_script(API_SCRIPT, "", str(data), str(tmp_path / "run"),
                        json.dumps(SMALL_BLOCKS))
    assert result["applied"] is False
    assert result["faults"] > FRESH_PAGES * 9 // 10  # glibc still unmaps freed large blocks


@glibc
def test_a_command_keeps_freed_memory_for_the_rest_of_its_process():
    result = run_script(CLI_SCRIPT, "")
    assert result["applied"] is True
    assert result["faults"] < FRESH_PAGES // 10


def test_opting_in_is_the_programs_own_call(random_mac, tmp_path, monkeypatch):
    import malt

    applied: list[bool] = []
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setattr(allocator, "_apply", lambda: applied.append(True) or True)
    malt.prepare(random_mac)
    run = malt.train({"seed": 1, "data": {"path": str(random_mac)},
                      "task": {"main": "last"}, "train": {"batch_size": 64},
                      "model": {"name": "base", **SMALL_BLOCKS}}, tmp_path / "run")
    run.predict(random_mac / "test" / "test.parquet")
    assert applied == []
    assert allocator.retain_freed_memory() is True
    assert applied == [True]
