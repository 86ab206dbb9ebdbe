"""Another process that holds an output's lock, for the tests of one writer per output."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """
import sys
from pathlib import Path
from malt.locks import output_lock
with output_lock(Path(sys.argv[1]), Path(sys.argv[2])):
    print("held", flush=True)
    sys.stdin.read()
"""


def start_holder(lock_file: Path, output: Path) -> subprocess.Popen:
    """A process that has taken `lock_file` (it holds it until its stdin closes)."""
    child = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock_file), str(output)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "held\n"
    return child


@contextmanager
def held_elsewhere(lock_file: Path, output: Path) -> Iterator[int]:
    """Another process holds `lock_file` while the block runs; yields its pid."""
    child = start_holder(lock_file, output)
    try:
        yield child.pid
    finally:
        child.stdin.close()
        child.wait()
