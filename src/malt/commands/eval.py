"""`malt eval`: print a run's evaluation, re-score it on other data, or compare with a baseline."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.eval.options import EvalOptions

HELP = ("show or recompute a run's evaluation (and its calibrators' effect); --baseline "
        "adds the paired differences with their intervals and the gains by slice")


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, EvalOptions)


def run(args: argparse.Namespace) -> int:
    from malt.data.layout import find_layout
    from malt.data.schema import schema_for
    from malt.eval.calibrate import calibration_effect, format_calibration_effect
    from malt.eval.impressions import format_impressions, impression_metrics
    from malt.eval.predictions import Predictions
    from malt.eval.report import (
        evaluate,
        evaluate_by_day,
        few_users_warning,
        format_days,
        format_metrics,
    )
    from malt.eval.rescore import rescore
    from malt.eval.target import format_target_metrics, target_metrics
    from malt.eval.truth import format_truth, truth_metrics, truth_of_predictions
    from malt.runs.calibration import load_calibration
    from malt.runs.directory import RunDir

    options = read_options(args, EvalOptions)
    run_dir = RunDir(options.run)
    config = run_dir.load_config()
    data = options.data or (config.data.path if options.day is not None else None)
    if data:
        predictions = rescore(run_dir, data, device=options.device, day=options.day,
                              precision=options.precision)
        metrics = evaluate(predictions)
        schema = run_dir.load_schema() or schema_for(data)
        day_truth = truth_of_predictions(schema, find_layout(data).days, predictions)
        truth = truth_metrics(predictions, day_truth)
        impressions = impression_metrics(predictions, day_truth)
    else:
        record = run_dir.load_metrics()
        metrics, truth, impressions = record.views, record.truth, record.impressions
        predictions = Predictions.load(run_dir.predictions_file)
    print(format_metrics(metrics, config.task.main))
    if data:
        print(f"scored on {', '.join(predictions.days)} of {data}")
    parent = run_dir.load_parent()
    if parent is not None:
        print(parent.describe())
        print("lineage: " + " <- ".join(str(p) for p in [run_dir.path, *run_dir.lineage()]))
    if truth:
        print(format_truth(truth, config.task.main))
    if impressions:
        print(format_impressions(impressions, config.task.main))
    per_day = evaluate_by_day(predictions)
    if per_day:
        print(format_days(per_day, metrics, config.task.main))
    if predictions.target_action is not None:
        print(format_target_metrics(target_metrics(predictions)))
    calibration = load_calibration(run_dir.calibration_file)
    if calibration is not None:
        before, after = calibration_effect(predictions, calibration)
        print(format_calibration_effect(before, after, calibration, config.task.main,
                                        predictions.days))
    warning = few_users_warning(metrics, per_day, config.task.main,
                                split="day" if options.day else config.data.eval_split)
    if warning is not None:
        print(f"warning: {warning}")
    if options.baseline:
        baseline = Predictions.load(RunDir(options.baseline).predictions_file) if not data \
            else rescore(RunDir(options.baseline), data, device=options.device,
                         day=options.day, precision=options.precision)
        _against_baseline(options, predictions, baseline, config.task.main,
                          data or config.data.path)
    return 0


def _against_baseline(options: EvalOptions, run, baseline, view: str, data: str) -> None:
    """The paired differences, the gains by path complexity (when the data has its labels),
    then by every `--by` slice."""
    from malt.eval.compare import compare, format_comparison
    from malt.eval.slices import (
        ACTIVITY,
        ACTIVITY_NAMES,
        COMPLEXITY,
        COMPLEXITY_NAMES,
        activity_slices,
        column_slices,
        complexity_slices,
        format_slices,
        pool_small,
        slice_gains,
    )

    draws = {"resamples": options.resamples, "seed": options.seed}
    print()
    print(format_comparison(compare([run], [baseline], view, **draws), options.run,
                            options.baseline))
    multi, single = options.complexity_labels
    missing = [label for label in (multi, single) if label not in run.labels]
    by = list(dict.fromkeys(options.by))
    if COMPLEXITY not in by:
        by.insert(0, COMPLEXITY)
    for slicing in by:
        if slicing == COMPLEXITY and missing:
            print(f"\nno path-complexity breakdown: the data has no {missing} label(s) "
                  f"(its labels: {', '.join(run.labels)}); name a multi-touch and a "
                  "single-touch label with --complexity-labels")
            continue
        if slicing == COMPLEXITY:
            slices = complexity_slices(run.user, run.label_weights(multi),
                                       run.label_weights(single))
            title, order = f"{multi}/{single}", COMPLEXITY_NAMES
        elif slicing == ACTIVITY:
            slices, title, order = activity_slices(run.user), "user clicks", ACTIVITY_NAMES
        else:
            slices, title = pool_small(column_slices(data, run, slicing)), slicing
            order = None
        gains = slice_gains(run, baseline, view, slices, order=order, **draws)
        print(f"\ngain over {options.baseline} on '{view}' by {title}:")
        print(format_slices(gains, title))
