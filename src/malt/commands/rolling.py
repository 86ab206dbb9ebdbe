"""`malt rolling`: each day's model judged on the next day, warm-started and from scratch."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, add_run_options
from malt.experiments.rolling_options import RollingOptions

HELP = ("rolling evaluation: for each day of a period, train up to it (warm-started from the "
        "day before, and/or from scratch) and score the model on the next day")

CHOSEN_PER_RUN = (("data", "train_from"), ("data", "train_days"), ("data", "eval_split"),
                  ("data", "validation_days"), ("data", "as_of"), ("init",))
"""The run settings each daily run takes from its chain and day, not from a flag."""


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, RollingOptions)
    add_run_options(parser, skip=CHOSEN_PER_RUN)


def run(args: argparse.Namespace) -> int:
    from malt.commands._options import read_options, resolve_config
    from malt.experiments.rolling import run_rolling

    options = read_options(args, RollingOptions)
    return run_rolling(resolve_config(args), options, say=lambda line: print(line, flush=True))
