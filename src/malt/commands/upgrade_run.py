"""`malt upgrade-run`: convert the pickled checkpoints of runs from earlier malt versions."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.runs.options import UpgradeRunOptions

HELP = "convert runs' pickled checkpoints (checkpoint.pt, earlier malt) to the safe format"


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, UpgradeRunOptions)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from malt.errors import ConfigError
    from malt.runs.directory import legacy_runs

    options = read_options(args, UpgradeRunOptions)
    runs = [run for path in options.paths for run in legacy_runs(Path(path))]
    if not runs:
        raise ConfigError(f"no run with a pickled checkpoint under {', '.join(options.paths)}")
    if not options.trust_pickle:
        raise ConfigError(f"{len(runs)} run(s) hold a pickled checkpoint, which can run code "
                          "when it is loaded; convert them only if you trust where they came "
                          "from, by passing --trust-pickle")
    for run in runs:
        with run.output.writing():
            run.upgrade_checkpoint()
        print(f"converted {run.checkpoint}")
    return 0
