"""`malt study <name>`: one of the MAC or KAML papers' studies, written as tables (and a figure)."""

from __future__ import annotations

import argparse

from malt.commands._options import add_model_option_flag, add_options, add_run_options
from malt.experiments.options import StudyOptions

HELP = ("run one of the MAC paper's studies (tables 2-8, figure 5, search, greedy), the "
        "grad-methods comparison, or KAML's")

RUN_FIELDS = [("data", "schema"), ("data", "validation_days"), ("train", "batch_size")]
"""The run settings a user gives every run of a study, on their own data."""
EVERY_RUN = ("aux",)
"""The study's options shown with the run settings."""


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, StudyOptions, skip=EVERY_RUN)
    runs = parser.add_argument_group(
        "every run", "applied to every run of the study, over the preset's settings (--aux: the "
                     "auxiliary set of the tuned runs and the candidates of greedy selection, "
                     "instead of the reference grid)")
    add_options(runs, StudyOptions, only=EVERY_RUN)
    add_run_options(runs, RUN_FIELDS, model=False)
    add_model_option_flag(runs)


def run(args: argparse.Namespace) -> int:
    from malt.commands._options import given_overrides, read_options
    from malt.experiments.engine import run_studies

    overrides = {k: v for k, v in given_overrides(args).items() if v}
    options = read_options(args, StudyOptions, overrides=overrides)
    return run_studies(options, say=lambda line: print(line, flush=True))
