"""`malt upgrade-run`: convert the pickled checkpoints of runs from earlier malt versions."""

from __future__ import annotations

import argparse

HELP = "convert runs' pickled checkpoints (checkpoint.pt, earlier malt) to the safe format"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="DIR",
                        help="run directories, or directories (such as a study) to search for "
                             "runs")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="required: you trust where these runs came from (a pickle is "
                             "read, through torch's restricted loader, to convert it)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from malt.errors import ConfigError
    from malt.runs.directory import legacy_runs

    runs = [run for path in args.paths for run in legacy_runs(Path(path))]
    if not runs:
        raise ConfigError(f"no run with a pickled checkpoint under {', '.join(args.paths)}")
    if not args.trust_pickle:
        raise ConfigError(f"{len(runs)} run(s) hold a pickled checkpoint, which can run code "
                          "when it is loaded; convert them only if you trust where they came "
                          "from, by passing --trust-pickle")
    for run in runs:
        with run.output.writing():
            run.upgrade_checkpoint()
        print(f"converted {run.checkpoint}")
    return 0
