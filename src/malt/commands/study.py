"""`malt study <name>`: one of the MAC paper's studies, written as tables (and a figure)."""

from __future__ import annotations

import argparse

HELP = "run one of the MAC paper's studies (tables 2-8, figure 5, search, greedy selection)"

STUDY_NAMES = ("main", "aux-metrics", "aux-targets", "params", "atl", "labels", "groups",
               "search", "greedy")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=[*STUDY_NAMES, "kaml", "all"],
                        help="the study (see docs/studies.md; kaml: the KAML paper's tables, "
                             "docs/kaml.md); `all` runs every MAC study in turn")
    parser.add_argument("--preset", default="smoke", choices=["smoke", "small", "paper"],
                        help="smoke: tiny simulated set, minutes on a CPU; small: the small "
                             "simulated set, the tables in docs/results (hours on a CPU); "
                             "paper: the full protocol (default smoke)")
    parser.add_argument("--data", help="data directory in the MAC layout (default: a simulated "
                                       "set in OUT/data, written when missing)")
    parser.add_argument("--schema", help="schema file (default: the MAC schema)")
    parser.add_argument("--out", help="output directory (default studies/<preset>)")
    parser.add_argument("--seeds", type=int, help="seeds per cell (default: the preset's)")
    parser.add_argument("--seed", type=int, default=2026,
                        help="first seed (seeds are SEED, SEED+1, ...) and simulation seed")
    parser.add_argument("--jobs", type=int,
                        help="parallel runs (default: one per GPU when CUDA devices are "
                             "visible; on CPU one per core for smoke, 1 for paper)")
    parser.add_argument("--models", nargs="+", help="models (default: the study's)")
    parser.add_argument("--targets", nargs="+", help="target labels (default: the study's)")
    parser.add_argument("--lrs", nargs="+", type=float,
                        help="learning rates of the grid (replaces the preset's)")
    parser.add_argument("--aux-weights", nargs="+", type=_weight, metavar="λ",
                        help="λ values of the grid; `ref` = the target's reference λ")
    parser.add_argument("--shuffle", action="store_true",
                        help="shuffle the rows within each training day (the paper's protocol "
                             "reads them in file order); recorded in the tables' notes")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--baselines", nargs="+",
                        help="kaml: RelaImpr baseline models (default: the multi-task ones)")


def _weight(text: str) -> float | None:
    return None if text == "ref" else float(text)


def run(args: argparse.Namespace) -> int:
    from malt.errors import ConfigError

    if args.name == "kaml":
        from malt.experiments.kaml import run_command

        if args.shuffle:
            raise ConfigError("--shuffle applies to the MAC studies; the kaml study does not "
                              "take it")
        return run_command(args)
    import time
    from dataclasses import replace
    from pathlib import Path

    from malt.data import prepare, schema_for
    from malt.data.layout import find_layout
    from malt.errors import Interrupted
    from malt.experiments.context import Context, claim_output
    from malt.experiments.presets import get_preset
    from malt.experiments.studies import STUDIES, write_output
    from malt.models.registry import model_spec

    preset = get_preset(args.preset)
    if args.shuffle:
        preset = replace(preset, name=f"{preset.name}, shuffled within days",
                         train={**preset.train, "shuffle": True})
    out = Path(args.out or f"studies/{args.preset}")
    seeds = args.seeds if args.seeds is not None else preset.seeds
    if seeds < 1:
        raise ConfigError(f"--seeds must be positive, got {seeds}")
    for model in args.models or ():
        model_spec(model)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for but CUDA is not available")
    data = Path(args.data) if args.data else out / "data"
    if args.data:
        find_layout(data)
    output = claim_output(out, data.resolve())
    if not args.data and not data.exists():
        from malt.data.simulate import simulate, size_config

        print(f"simulating the '{preset.sim_size}' data set into {data} ...", flush=True)
        simulate(size_config(preset.sim_size, seed=args.seed), data)
    data = data.resolve()
    dataset = prepare(data, schema_for(data, args.schema))
    ctx = Context(preset=preset, data=data, out=out, labels=dataset.schema.labels,
                  seeds=tuple(range(args.seed, args.seed + seeds)), schema=args.schema,
                  models=tuple(args.models) if args.models else None,
                  targets=tuple(args.targets) if args.targets else None,
                  lrs=tuple(args.lrs) if args.lrs else None,
                  aux_weights=tuple(args.aux_weights) if args.aux_weights else None,
                  jobs=args.jobs, device=args.device,
                  say=lambda line: print(line, flush=True))
    names = STUDY_NAMES if args.name == "all" else (args.name,)
    try:
        for name in names:
            started, before = time.perf_counter(), len(ctx.trained)
            print(f"\n== study {name} ({STUDIES[name][1]}) ==", flush=True)
            result = STUDIES[name][0](ctx)
            for _, table in result.tables:
                print(f"\n{table.markdown()}")
            paths = write_output(output, name, result)
            print(f"\nwrote {', '.join(str(p) for p in paths)}\n"
                  f"{ctx.cost_summary(before)}; {time.perf_counter() - started:.0f} s wall",
                  flush=True)
    except (Interrupted, KeyboardInterrupt):
        print(f"\ninterrupted; checkpoints are saved. Run the same command again to resume "
              f"(completed runs under {ctx.runs} are kept).")
        return 130
    if ctx.failures:
        print(f"\n{len(ctx.failures)} run(s) failed (their cells show –):")
        for outcome in ctx.failures.values():
            print(f"  {outcome.cell.run_dir(ctx.runs).path}: {outcome.error}")
        print("Fix the cause and run the same command again: completed runs are skipped.")
        return 1
    return 0

