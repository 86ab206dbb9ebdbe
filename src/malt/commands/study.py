"""`malt study <name>`: one of the MAC or KAML papers' studies, written as tables (and a figure)."""

from __future__ import annotations

import argparse
from typing import Literal

from malt.commands._options import (
    add_device_flag,
    add_model_option_flag,
    add_run_options,
    add_seed_flag,
    typed,
)
from malt.typed_fields import NonNegativeFloat, PositiveFloat, PositiveInt

HELP = "run one of the MAC paper's studies (tables 2-8, figure 5, search, greedy) or KAML's"

STUDY_NAMES = ("main", "aux-metrics", "aux-targets", "params", "atl", "labels", "groups",
               "search", "greedy", "kaml")
RUN_FIELDS = [("data", "schema"), ("data", "validation_days"), ("task", "aux"),
              ("train", "batch_size")]
"""The run settings a user gives every run of a study, on their own data."""
REF = "ref"
"""The --aux-weights value that stands for the target's reference λ."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=[*STUDY_NAMES, "all"],
                        help="the study (see docs/studies.md; kaml: the KAML paper's tables, "
                             "docs/kaml.md); `all` runs every MAC study in turn")
    parser.add_argument("--preset", default="smoke", choices=["smoke", "small", "paper"],
                        help="smoke: tiny simulated set, minutes on a CPU; small: the small "
                             "simulated set, the tables in docs/results (hours on a CPU); "
                             "paper: the full protocol (default smoke)")
    parser.add_argument("--data", help="data directory in the MAC layout (default: a simulated "
                                       "set in OUT/data, written when missing)")
    parser.add_argument("--out", help="output directory (default studies/<preset>, "
                                      "studies/kaml-<preset> for kaml)")
    parser.add_argument("--seeds", type=typed("--seeds", PositiveInt),
                        help="seeds per cell (default: the preset's)")
    add_seed_flag(parser, "the first run of each cell (seeds are SEED, SEED+1, ...) and of "
                          "the simulation")
    parser.add_argument("--jobs", type=typed("--jobs", PositiveInt),
                        help="parallel runs (default: one per GPU when CUDA devices are "
                             "visible; on CPU one per core for smoke, 1 for paper)")
    parser.add_argument("--models", nargs="+", help="models (default: the study's)")
    parser.add_argument("--targets", nargs="+", help="target labels (default: the study's)")
    parser.add_argument("--lrs", nargs="+", type=typed("--lrs", PositiveFloat),
                        help="learning rates of the grid (replaces the preset's)")
    parser.add_argument("--aux-weights", nargs="+", metavar="λ",
                        type=typed("--aux-weights", NonNegativeFloat | Literal[REF]),
                        help="λ values of the grid; `ref` = the target's reference λ")
    parser.add_argument("--shuffle", action="store_true",
                        help="shuffle the rows within each training day (the paper's protocol "
                             "reads them in file order); recorded in the tables' notes")
    add_device_flag(parser)
    parser.add_argument("--backend", default="local", choices=["local", "ray"],
                        help="where the runs train: local processes, or Ray tasks (malt[ray]; "
                             "each run asks for its share of a node's cores, or a GPU); "
                             "default local")
    parser.add_argument("--address", metavar="ADDR",
                        help="--backend ray: the cluster to join (`auto`, ray://host:port); the "
                             "output and data must then be on a file system every node "
                             "shares (default: start a local Ray instance on this machine's "
                             "cores)")
    parser.add_argument("--baselines", nargs="+",
                        help="kaml: RelaImpr baseline models (default: the multi-task ones)")
    runs = parser.add_argument_group(
        "every run", "applied to every run of the study, over the preset's settings (--aux: the "
                     "auxiliary set of the tuned runs and the candidates of greedy selection, "
                     "instead of the reference grid)")
    add_run_options(runs, RUN_FIELDS, model=False)
    add_model_option_flag(runs)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from malt.commands._options import given_overrides
    from malt.experiments.engine import StudyOptions, run_studies

    overrides = given_overrides(args)
    aux = overrides.get("task", {}).pop("aux", None)
    overrides = {k: v for k, v in overrides.items() if v}

    def tuple_or_none(values):
        return tuple(values) if values else None

    options = StudyOptions(
        names=(args.name,), preset=args.preset, data=Path(args.data) if args.data else None,
        out=Path(args.out) if args.out else None, seed=args.seed, seeds=args.seeds,
        jobs=args.jobs, device=args.device, backend=args.backend, address=args.address,
        shuffle=args.shuffle,
        models=tuple_or_none(args.models), targets=tuple_or_none(args.targets),
        aux=None if aux is None else tuple(aux), lrs=tuple_or_none(args.lrs),
        aux_weights=None if args.aux_weights is None else
        tuple(None if w == REF else w for w in args.aux_weights),
        baselines=tuple_or_none(args.baselines), overrides=overrides)
    return run_studies(options, say=lambda line: print(line, flush=True))
