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
    options = read_options(args, CalibrateOptions)
    calibrate_and_report(options.run, options.method, options.days, by=options.by,
                         device=options.device)
    return 0


def calibrate_and_report(run: str, method: str, days: int | None = None, *,
                         by: str | None = None, device: str = "auto") -> None:
    """Fit and save the run's calibrators, then print what they were fitted on and their
    effect on the run's evaluation (what `malt train --calibrate` does after training too)."""
    from malt.eval.calibrate import calibrate_run, calibration_effect, format_calibration_effect
    from malt.eval.predictions import Predictions
    from malt.runs.load import load_run

    trained = load_run(run)
    calibration, chosen = calibrate_run(trained, method, days, by=by, device=device)
    print(f"fitted {method} calibrators of {len(calibration.views)} view(s) on "
          f"{', '.join(chosen.names)} ({calibration.rows:,} rows) -> "
          f"{trained.run.calibration_file}")
    if not chosen.held_out:
        print("note: the run was trained on these days, so its scores on them are in-sample; "
              "for calibrators fitted on unseen days, train with --eval-split validation")
    if trained.run.predictions_file.is_file():
        evaluated = Predictions.load(trained.run.predictions_file)
        before, after = calibration_effect(evaluated, calibration)
        print(format_calibration_effect(before, after, calibration, trained.task.main,
                                        evaluated.days))
