"""The allocator setting: freed blocks are reused without faulting their pages in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import malt.cli
from malt import allocator

# Three warm-up "steps" that allocate and free two 64 MiB arrays (above glibc's largest
# adaptive mmap threshold), then the page faults of three more. numpy's plain malloc, not
# torch's 64-byte-aligned one: a freed block then always fits the next request of its size
# (an aligned request asks a little more, and glibc sometimes places it past the freed space).
REUSE_SCRIPT = """
import json, resource, numpy as np
from malt.allocator import retain_freed_memory
applied = retain_freed_memory()
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
FRESH_PAGES = 3 * 2 * (1 << 26) // 4096
"""Pages of the three measured steps' tensors: what they fault when none is reused."""

glibc = pytest.mark.skipif(not sys.platform.startswith("linux")
                           or os.confstr("CS_GNU_LIBC_VERSION") is None, reason="glibc only")


def run_script(script: str, malloc: str) -> dict:
    """The JSON `script` prints, run in a fresh interpreter with `MALT_MALLOC=malloc`."""
    out = subprocess.run([sys.executable, "-c", script],
                         # 4 KiB pages, so that faults count pages (numpy asks for huge ones)
                         env={**os.environ, allocator.OPT_OUT: malloc,
                              "NUMPY_MADVISE_HUGEPAGE": "0"},
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


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
