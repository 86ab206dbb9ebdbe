"""The command line loads only what the command it runs needs: `malt --help` and every
command's `--help` never load numpy, the data stack (pandas, pyarrow) or torch."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from malt.cli import build_parser, command_in, command_names

HEAVY = ("numpy", "pandas", "pyarrow", "torch", "matplotlib", "tensorboard")
LOADED_BY = """
import json, sys, malt.cli
try:
    malt.cli.main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""
LOADED_BY_EACH = """
import contextlib, io, json, sys, malt.cli
loaded = {{}}
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            malt.cli.main(argv)
        except SystemExit:
            pass
    loaded[" ".join(argv)] = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps(loaded))
"""


def heavy_modules_loaded(*argv: str) -> list[str]:
    """The HEAVY libraries a fresh interpreter has loaded after `malt argv`."""
    done = subprocess.run([sys.executable, "-c", LOADED_BY.format(heavy=HEAVY), *argv],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stderr.strip().splitlines()[-1])


def every_help() -> list[list[str]]:
    """`--help` of malt, of every command and of every action of a command that has some."""
    def helps(parser: argparse.ArgumentParser, words: list[str]) -> list[list[str]]:
        out = [[*words, "--help"]]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out += helps(sub, [*words, name])
        return out
    return helps(build_parser(), [])


def test_no_help_loads_numpy_the_data_stack_or_torch():
    # One interpreter walks them all (cheap); what each left loaded is kept, so the first
    # argv listed is the one that loaded it.
    argvs = every_help()
    assert {argv[0] for argv in argvs[1:]} == set(command_names())  # the walk finds them
    assert ["data", "coverage", "--help"] in argvs
    done = subprocess.run([sys.executable, "-c", LOADED_BY_EACH.format(heavy=HEAVY),
                           json.dumps(argvs)], capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    assert list(loaded) == [" ".join(argv) for argv in argvs]
    assert {argv: modules for argv, modules in loaded.items() if modules} == {}


def test_a_command_that_reads_data_loads_it_when_it_runs(tmp_path):
    # The check above could not fail if nothing ever loaded pandas in such a process.
    assert {"numpy", "pyarrow"} <= set(heavy_modules_loaded("prepare", "--data",
                                                            str(tmp_path / "missing")))


def test_the_command_is_found_after_the_top_level_options():
    assert command_in(["--log-level", "DEBUG", "train", "--lr", "0.1"]) == "train"
    assert command_in(["--log-level=INFO", "upgrade-run", "--run", "x"]) == "upgrade-run"
    assert command_in(["--help"]) is None
    assert command_in(["no-such-command", "train"]) is None
    assert command_in([]) is None
