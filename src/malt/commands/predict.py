"""`malt predict`: score data without labels with a finished run's model."""

from __future__ import annotations

import argparse
from typing import get_args

from malt.commands._options import add_device_flag, typed
from malt.deploy.choices import Engine
from malt.typed_fields import PositiveInt

HELP = "score parquet files (or a MAC-layout directory's test days) with a trained run"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run directory written by `malt train`")
    parser.add_argument("--data", required=True,
                        help="a parquet file, a directory of them, or a MAC-layout data set "
                             "(its test days); label columns are not needed")
    parser.add_argument("--out", required=True, help="parquet file to write")
    parser.add_argument("--keep", action="append", default=[], metavar="COL",
                        help="copy this input column to the output (repeatable)")
    parser.add_argument("--eval", action="store_true",
                        help="also read the label columns and print the evaluation metrics")
    parser.add_argument("--engine", default="torch", choices=get_args(Engine),
                        help="torch: the eager model; onnx: the model exported to ONNX and run "
                             "by ONNX Runtime (pip install 'malt[onnx]') (default torch)")
    parser.add_argument("--batch-size", type=typed("--batch-size", PositiveInt),
                        default=None,
                        help="rows per model call (default 4096)")
    parser.add_argument("--vocabs", default=None,
                        help="vocabs to map raw ids with (a data set or a folder of "
                             "<column>.json; default: the run's training data's)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_device_flag(parser)


def run(args: argparse.Namespace) -> int:
    from malt.commands._progress import ProgressLines, format_rows_progress
    from malt.deploy.engines import scoring_device
    from malt.deploy.predict import PREDICT_BATCH_ROWS, Scorer, file_sources, predict_file
    from malt.eval.report import format_days, format_metrics
    from malt.runs.load import load_run

    trained = load_run(args.run, vocabs=args.vocabs)
    device = scoring_device(args.engine, args.device)
    scorer = Scorer(trained, engine=args.engine, device=device, keep=tuple(args.keep),
                    evaluate=args.eval, batch_size=PREDICT_BATCH_ROWS if args.batch_size is None
                    else args.batch_size)
    sources = file_sources(args.data)
    rows = sum(s.rows for s in sources)
    model, files = trained.config.model["name"], "files" if len(sources) > 1 else "file"
    print(f"scoring {rows:,} rows of {len(sources)} {files} with {model} ({args.engine} on "
          f"{device.type}) -> {args.out}", flush=True)
    report = predict_file(scorer, sources, args.out, overwrite=args.overwrite,
                          progress=ProgressLines(format=format_rows_progress))
    columns = ", ".join([*scorer.predicted, *scorer.passed])
    print(f"wrote {report.rows:,} rows ({report.rows_per_s:,.0f} rows/s) to {args.out}: "
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
