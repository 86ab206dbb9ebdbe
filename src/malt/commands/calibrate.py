"""`malt calibrate`: fit a calibrator per view of a finished run, saved in the run."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.eval.options import CalibrateOptions

HELP = ("fit post-hoc calibrators (isotonic, Platt, temperature) of a finished run's views on "
        "held-out days; predict, eval, export and the API then apply them")


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, CalibrateOptions)


def run(args: argparse.Namespace) -> int:
    from malt.eval.calibrate import calibrate_run, calibration_effect, format_calibration_effect
    from malt.eval.predictions import Predictions
    from malt.runs.load import load_run

    options = read_options(args, CalibrateOptions)
    trained = load_run(options.run)
    calibration, days = calibrate_run(trained, options.method, options.days,
                                      device=options.device)
    print(f"fitted {options.method} calibrators of {len(calibration.views)} view(s) on "
          f"{', '.join(days.names)} ({calibration.rows:,} rows) -> "
          f"{trained.run.calibration_file}")
    if not days.held_out:
        print("note: the run was trained on these days, so its scores on them are in-sample; "
              "for calibrators fitted on unseen days, train with --eval-split validation")
    if trained.run.predictions_file.is_file():
        evaluated = Predictions.load(trained.run.predictions_file)
        before, after = calibration_effect(evaluated, calibration)
        print(format_calibration_effect(before, after, calibration, trained.task.main,
                                        evaluated.days))
    return 0
