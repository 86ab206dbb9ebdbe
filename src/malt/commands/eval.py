"""`malt eval`: print a run's evaluation, re-score it on other data, or compare with a baseline."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.eval.options import EvalOptions

HELP = "show or recompute a run's evaluation; --baseline adds the GAUC gain by user group"


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, EvalOptions)


def run(args: argparse.Namespace) -> int:
    from malt.data.layout import find_layout
    from malt.data.schema import schema_for
    from malt.eval.predictions import Predictions
    from malt.eval.report import (
        complexity_breakdown,
        evaluate,
        evaluate_by_day,
        format_breakdown,
        format_days,
        format_metrics,
    )
    from malt.eval.rescore import rescore
    from malt.eval.target import format_target_metrics, target_metrics
    from malt.eval.truth import format_truth, truth_metrics, truth_of_predictions
    from malt.runs.directory import RunDir

    options = read_options(args, EvalOptions)
    run_dir = RunDir(options.run)
    config = run_dir.load_config()
    if options.data:
        predictions = rescore(run_dir, options.data, device=options.device)
        metrics = evaluate(predictions)
        schema = run_dir.load_schema() or schema_for(options.data)
        truth = truth_metrics(predictions, truth_of_predictions(
            schema, find_layout(options.data).days, predictions))
    else:
        record = run_dir.load_metrics()
        metrics, truth = record.views, record.truth
        predictions = Predictions.load(run_dir.predictions_file)
    print(format_metrics(metrics, config.task.main))
    if truth:
        print(format_truth(truth, config.task.main))
    per_day = evaluate_by_day(predictions)
    if per_day:
        print(format_days(per_day, metrics, config.task.main))
    if predictions.target_action is not None:
        print(format_target_metrics(target_metrics(predictions)))
    if options.baseline:
        baseline = Predictions.load(RunDir(options.baseline).predictions_file) if not options.data \
            else rescore(RunDir(options.baseline), options.data, device=options.device)
        print(f"\nGAUC gain over {options.baseline} on '{config.task.main}' by path complexity:")
        print(format_breakdown(complexity_breakdown(predictions, baseline, config.task.main)))
    return 0
