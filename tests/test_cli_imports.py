"""The command line loads only what the command it runs needs: `malt --help` and a command's
`--help` never load the data stack (pandas, pyarrow) or torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from malt.cli import command_in

HEAVY = ("pandas", "pyarrow", "torch", "matplotlib", "tensorboard")
LOADED_BY = """
import json, sys, malt.cli
try:
    malt.cli.main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def heavy_modules_loaded(*argv: str) -> list[str]:
    """The HEAVY libraries a fresh interpreter has loaded after `malt argv`."""
    done = subprocess.run([sys.executable, "-c", LOADED_BY.format(heavy=HEAVY), *argv],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [("--help",), ("train", "--help"), ("study", "--help"),
                                  ("predict", "--help"), ("demo", "--help"), ("data", "--help"),
                                  ("data", "kuairand-sim", "--help")])
def test_help_loads_neither_the_data_stack_nor_torch(argv):
    assert heavy_modules_loaded(*argv) == []


def test_a_command_that_reads_data_loads_it_when_it_runs(tmp_path):
    # The check above could not fail if nothing ever loaded pandas in such a process.
    assert "pyarrow" in heavy_modules_loaded("prepare", "--data", str(tmp_path / "missing"))


def test_the_command_is_found_after_the_top_level_options():
    assert command_in(["--log-level", "DEBUG", "train", "--lr", "0.1"]) == "train"
    assert command_in(["--log-level=INFO", "upgrade-run", "--run", "x"]) == "upgrade-run"
    assert command_in(["--help"]) is None
    assert command_in(["no-such-command", "train"]) is None
    assert command_in([]) is None
