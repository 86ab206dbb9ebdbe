"""`malt train`: train one model on a data set, evaluate it, and keep everything in a run dir."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, add_run_options, read_options
from malt.runs.options import TrainOptions

HELP = "train a model (one pass, day by day) and evaluate it on the held-out day"


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_options(parser)
    add_options(parser, TrainOptions)


def run(args: argparse.Namespace) -> int:
    from malt.allocator import release_freed_memory
    from malt.commands._options import given_overrides, resolve_config
    from malt.commands._progress import console_progress
    from malt.errors import ConfigError, Interrupted
    from malt.eval.report import format_days, format_metrics
    from malt.jobs.train import train_run
    from malt.runs.directory import RunDir, with_parent_config
    from malt.training.distributed import launched_rank

    options = read_options(args, TrainOptions)
    if options.resume:
        extra = {k: v for k, v in given_overrides(args).items() if k != "train"}
        extra_train = set(given_overrides(args).get("train", {})) - {"device"}
        if args.config or extra or extra_train:
            raise ConfigError("--resume continues a run under its saved config; pass only "
                              "--out (and optionally --device)")
    config = resolve_config(args)
    if config.init.from_run is not None and not options.resume:
        # A warm start takes its parent's config; the file and the flags say what changes.
        config = resolve_config(args, with_parent_config({"init": {"from_run":
                                                                   config.init.from_run}}))
    if options.calibrate is not None:
        from malt.eval.calibrate import check_method

        check_method(options.calibrate)  # before hours of training, not after
    try:
        metrics = train_run(config, options.out, resume=options.resume,
                            overwrite=options.overwrite, progress=console_progress(),
                            announce=print, day_end=release_freed_memory)
    except (Interrupted, KeyboardInterrupt) as stop:
        # Interrupted: the trainer saved a checkpoint; a Ctrl-C anywhere else (building the
        # run, evaluating it) leaves the last one (if any), from which a started run resumes.
        if isinstance(stop, KeyboardInterrupt) and not RunDir(options.out).exists():
            raise
        if launched_rank() == 0:  # every rank of a torchrun launch stops alike
            said = f"{stop}; checkpoint saved" if isinstance(stop, Interrupted) else \
                "interrupted"
            print(f"{said}. Continue with: malt train --resume --out {options.out}")
        return 130
    if metrics is not None:
        print(metrics.train.summary())
        print(format_metrics(metrics.views, metrics.main))
        if metrics.per_day:
            print(format_days(metrics.per_day, metrics.views, metrics.main))
        if metrics.target is not None:
            from malt.eval.target import format_target_metrics

            print(format_target_metrics(metrics.target))
        if metrics.impressions is not None:
            from malt.eval.impressions import format_impressions

            print("views scored on the clicked impressions; over every impression:")
            print(format_impressions(metrics.impressions, metrics.main))
        if options.calibrate is not None:
            from malt.commands.calibrate import calibrate_and_report

            calibrate_and_report(options.out, options.calibrate, device=config.train.device)
        print(f"run: {options.out}")
    return 0
