"""`malt compare`: a run against a baseline, each metric's difference with its paired interval."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.eval.options import CompareOptions

HELP = ("compare runs with a baseline on the same rows: Δ AUC, GAUC, logloss with paired "
        "bootstrap intervals over users and seeds")


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, CompareOptions)


def run(args: argparse.Namespace) -> int:
    from malt.eval.compare import compare_runs, format_comparison

    options = read_options(args, CompareOptions)
    comparison = compare_runs(options.runs, options.baseline, view=options.view,
                              metrics=options.metrics, resamples=options.resamples,
                              level=options.level, seed=options.seed)
    print(format_comparison(comparison, _name(options.runs), _name(options.baseline)))
    return 0


def _name(runs: list[str]) -> str:
    return runs[0] if len(runs) == 1 else f"{runs[0]} (+{len(runs) - 1} seeds)"
