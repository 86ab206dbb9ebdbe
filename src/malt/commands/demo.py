"""`malt demo`: the main job — simulate, train BASE and MoAE on last-click, compare them."""

from __future__ import annotations

import argparse
from pathlib import Path

from malt.commands._options import add_device_flag, add_seed_flag

HELP = "simulate a small data set, train BASE and MoAE (last-click target) and compare them"

DEMO_KIND = "demo"
DEMO_MODELS = {
    "base": [],
    "moae": ["first", "linear", "mta", "cat"],
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="directory for data and runs")
    parser.add_argument("--data", help="use this data set (MAC layout) instead of simulating")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "mac"],
                        help="simulated size when --data is not given")
    add_seed_flag(parser, "the simulation and the runs")
    add_device_flag(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier demo in --out that was run with other settings")


def run(args: argparse.Namespace) -> int:
    from malt.data.layout import find_layout
    from malt.errors import Interrupted
    from malt.outputs import OutputDir

    out = Path(args.out)
    data = Path(args.data) if args.data else out / "data"
    if args.data:
        find_layout(data)
    try:
        with OutputDir(out, DEMO_KIND).writing():
            return _run_demo(args, out, data)
    except (Interrupted, KeyboardInterrupt) as stop:
        stopped = f" ({stop})" if isinstance(stop, Interrupted) else ""
        print(f"\ninterrupted{stopped}. Run the same command again to continue: what is "
              "finished (the data, trained runs) is kept and an interrupted run resumes from "
              "its checkpoint")
        return 130


def _run_demo(args: argparse.Namespace, out: Path, data: Path) -> int:
    from malt.allocator import release_freed_memory
    from malt.commands._progress import console_progress
    from malt.data import prepare
    from malt.eval.job import train_run
    from malt.eval.predictions import Predictions
    from malt.eval.report import complexity_breakdown, format_breakdown
    from malt.training.config import RunConfig
    from malt.training.run_dir import RunDir

    settings = {"seed": args.seed, "data": str(data.resolve()) if args.data else None,
                "size": None if args.data else args.size, "models": DEMO_MODELS}
    if claim_demo(out, settings, overwrite=args.overwrite):
        print(f"{out} holds a demo with these settings (seed {args.seed}, "
              f"{'data ' + args.data if args.data else 'size ' + args.size}): reusing its "
              "data and finished runs (--overwrite starts again)", flush=True)
    if not args.data and not data.exists():
        from malt.data.simulate import simulate, size_config

        print(f"simulating the '{args.size}' data set into {data} ...", flush=True)
        stats = simulate(size_config(args.size, seed=args.seed), data)
        print(stats.format())
    dataset = prepare(data)

    results = {}
    for model, aux in DEMO_MODELS.items():
        run = RunDir(out / "runs" / model)
        config = RunConfig.from_dict({
            "seed": args.seed, "data": {"path": str(data)},
            "task": {"main": "last", "aux": aux},
            # Shuffled within days: the simulator's days are in time order with a daily swing
            # of the conversion rate, which a file-order pass chases (docs/studies.md).
            "train": {"device": args.device, "shuffle": True},
            "model": {"name": model}})
        print(f"\ntraining {model} (main: last, aux: {', '.join(aux) or 'none'}) ...", flush=True)
        results[model] = train_run(config, run.path, resume=run.exists(), dataset=dataset,
                                   progress=console_progress(), announce=print,
                                   day_end=release_freed_memory)

    base = results["base"].views["last"]
    print(f"\n{'model':<8}{'AUC':>9}{'GAUC':>9}{'ΔAUC (pt)':>12}{'ΔGAUC (pt)':>12}{'train s':>9}")
    for model, metrics in results.items():
        m = metrics.views["last"]
        print(f"{model:<8}{m.auc:>9.4f}{m.gauc:>9.4f}{100 * (m.auc - base.auc):>+12.2f}"
              f"{100 * (m.gauc - base.gauc):>+12.2f}{metrics.train.seconds:>9.0f}")
    breakdown = complexity_breakdown(Predictions.load(RunDir(out / "runs" / "moae")
                                                      .predictions_file),
                                     Predictions.load(RunDir(out / "runs" / "base")
                                                      .predictions_file), "last")
    print("\nGAUC gain of MoAE over BASE by conversion-path complexity (linear/last per user):")
    print(format_breakdown(breakdown))
    print(f"\nruns and data: {out}  (malt eval --run {out}/runs/moae --baseline "
          f"{out}/runs/base)")
    return 0


def claim_demo(out, settings: dict, *, overwrite: bool) -> bool:
    """Make `out` the demo directory of `settings` (kept in `demo.json`); True when it already
    was one, whose data and runs are then reused. A demo run with other settings is replaced
    only with `overwrite`."""
    import json

    from malt.config_files import read_key_value_file
    from malt.errors import ConfigError
    from malt.outputs import OutputDir, atomic_write_text

    output = OutputDir(out, DEMO_KIND)
    record = output.path / "demo.json"
    if output.is_ours() and record.is_file():
        try:
            earlier = read_key_value_file(record, "demo record")
        except ConfigError as exc:
            if not overwrite or isinstance(exc.__cause__, OSError):
                raise ConfigError(f"{exc}; pass --overwrite to run the demo again there or "
                                  "choose another --out") from exc
            earlier = None  # damaged: replaced below
        if earlier == json.loads(json.dumps(settings, allow_nan=False)):
            return True
        if earlier is not None and not overwrite:
            raise ConfigError(f"{out} holds a demo run with other settings ({_describe(earlier)}"
                              f"); pass --overwrite to replace it or choose another --out")
    # Ours without a record: a demo stopped before it wrote anything but its manifest.
    output.claim(overwrite=overwrite, keep=output.is_ours() and not record.is_file())
    atomic_write_text(output.writable(record), json.dumps(settings, indent=1, allow_nan=False))
    return False


def _describe(settings: dict) -> str:
    source = f"data {settings['data']}" if settings.get("data") \
        else f"size {settings.get('size')}"
    models = settings.get("models")
    return (f"seed {settings.get('seed')}, {source}, models "
            f"{', '.join(map(str, models)) if isinstance(models, list) else models}")
