"""`malt predict`: score data without labels with a finished run's model."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.deploy.options import PredictOptions

HELP = "score parquet files (or a MAC-layout directory's test days) with a trained run"


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, PredictOptions)


def run(args: argparse.Namespace) -> int:
    from malt.commands._progress import ProgressLines, format_rows_progress
    from malt.deploy.engines import scoring_device
    from malt.deploy.predict import PREDICT_BATCH_ROWS, Scorer, file_sources, predict_file
    from malt.eval.report import format_days, format_metrics
    from malt.runs.load import load_run

    options = read_options(args, PredictOptions)
    trained = load_run(options.run, vocabs=options.vocabs)
    device = scoring_device(options.engine, options.device)
    scorer = Scorer(trained, engine=options.engine, device=device, keep=tuple(options.keep),
                    evaluate=options.eval,
                    batch_size=options.batch_size or PREDICT_BATCH_ROWS,
                    calibrated=not options.uncalibrated, precision=options.precision)
    sources = file_sources(options.data)
    rows = sum(s.rows for s in sources)
    model, files = trained.config.model["name"], "files" if len(sources) > 1 else "file"
    calibration = "" if scorer.calibration is None else \
        f", {scorer.calibration.method} calibration"
    precision = "" if options.precision == "fp32" else f" in {options.precision}"
    print(f"scoring {rows:,} rows of {len(sources)} {files} with {model} ({options.engine} on "
          f"{device.type}{precision}{calibration}) -> {options.out}", flush=True)
    report = predict_file(scorer, sources, options.out, overwrite=options.overwrite,
                          progress=ProgressLines(format=format_rows_progress))
    columns = ", ".join([*scorer.predicted, *scorer.passed])
    print(f"wrote {report.rows:,} rows ({report.rows_per_s:,.0f} rows/s) to {options.out}: "
          f"{columns}")
    missed = {c: n for c, n in report.oov.items() if n}
    if missed and report.rows:
        print("out-of-vocabulary ids: " + ", ".join(
            f"{c} {n:,} ({100 * n / report.rows:.1f}% of rows)" for c, n in missed.items()))
    else:
        print("out-of-vocabulary ids: none")
    if report.metrics is not None:
        print(format_metrics(report.metrics, trained.task.main))
        if report.per_day:
            print(format_days(report.per_day, report.metrics, trained.task.main))
    return 0
