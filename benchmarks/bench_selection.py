"""Selection regret of the validation search: before (one validation seed, the argmax of GAUC)
and after (the leaders on several validation seeds, flagged runs excluded, the one-standard-
error rule) under each criterion (GAUC, AUC, logloss).

For each simulated data set the `search` study's problems (BASE and MoAE on each target) are
searched on the validation day, and every grid cell is also trained on all training days and
tested on every seed. Regret = test score (mean over seeds) of the best grid cell − that of the
selected cell, averaged over problems and simulations; "hit" = the share of problems whose
selection is the best cell.

Two kinds of data: the simulation as it is (on the last-click target its auxiliary views help:
+4 pt test GAUC for MoAE on the `small` set), and `--aux-noise`, the same simulation with every
auxiliary label column permuted over the rows of each training day, so that by construction the
auxiliary views carry nothing about the target and MAL cannot help; a search that picks a large
λ there is fitting noise. The table also gives the test Δ of the best MoAE cell over the best
BASE cell, which says whether MAL helped.

    python -m benchmarks.bench_selection [--simulations 4] [--size tiny] [--users 1800]
        [--preset smoke] [--seeds 3] [--aux-noise] [--shuffle]
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.report import publish
from malt.data.schema import MAC
from malt.experiments.engine import open_study
from malt.experiments.options import StudyOptions
from malt.experiments.search import METRIC_NAMES, SELECT_METRICS, Setting
from malt.experiments.study import Variant
from malt.sources.simulate import simulate, size_config

TARGET = "last"

PROTOCOLS = ("before", *SELECT_METRICS)


def before(runs) -> Setting | None:
    """The search as it was: the first setting of the highest first-seed validation GAUC."""
    scored = {s: r[0].gauc for s, r in runs.items() if r[0] is not None and
              math.isfinite(r[0].gauc)}
    return max(scored, key=scored.__getitem__) if scored else None


def permute_auxiliary_labels(data: Path, labels: tuple[str, ...], seed: int) -> None:
    """Permute every label column but the target over the rows of each training day file, in
    place: the auxiliary views keep their rates and lose all relation to the features."""
    rng = np.random.default_rng(seed)
    for day in sorted((data / "train").glob("*.parquet")):
        table = pq.read_table(day)
        order = rng.permutation(table.num_rows)
        for label in labels:
            if label != TARGET and label in table.column_names:
                column = table.column(label).take(pa.array(order))
                table = table.set_column(table.column_names.index(label), label, column)
        pq.write_table(table, day)


def one_simulation(args, seed: int) -> list[dict]:
    """Per problem: the test score per cell and the selection of each protocol."""
    name = f"{args.size}-users{args.users}-sim{seed}{'-aux-noise' if args.aux_noise else ''}"
    out, data = Path(args.out) / f"study-{name}", Path(args.out) / f"data-{name}"
    if not data.exists():
        simulate(size_config(args.size, seed=seed, users=args.users), data)
        if args.aux_noise:
            permute_auxiliary_labels(data, MAC.labels, seed)
    options = StudyOptions(names=("search",), preset=args.preset, data=data, out=out, seed=seed,
                           seeds=args.seeds, lrs=tuple(args.lrs),
                           aux_weights=tuple(args.aux_weights), jobs=args.jobs, device="cpu",
                           shuffle=args.shuffle)
    study = open_study(options, "mac", say=lambda line: None)
    pairs = [(m, TARGET) for m in ("base", "moae")]
    tuned = study.tune(pairs, search_study=True)
    problems = []
    for key, (_, result) in tuned.items():
        cells = list(result.runs)
        aux = study.reference_aux(*key)
        tests = study.test([Variant(key[0], key[1], aux, s) for s in cells])
        score = {metric: {s: float(np.mean([getattr(m.views[TARGET], metric) for m in runs]))
                          for s, runs in zip(cells, tests)} for metric in ("gauc", "auc")}
        chosen = {"before": before(result.runs),
                  **{m: result.choices[m].setting for m in SELECT_METRICS}}
        problems.append({"simulation": seed, "problem": key, "score": score,
                         "chosen": chosen})
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulations", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=2026)
    parser.add_argument("--size", choices=("tiny", "small"), default="tiny",
                        help="the simulation's size preset")
    parser.add_argument("--users", type=int, default=1800, help="users of each simulation")
    parser.add_argument("--preset", choices=("smoke", "small"), default="smoke",
                        help="the study preset (model and batch size)")
    parser.add_argument("--aux-noise", action="store_true",
                        help="permute the auxiliary labels within each training day")
    parser.add_argument("--shuffle", action="store_true",
                        help="shuffle each training day's rows (the days stay in order)")
    parser.add_argument("--seeds", type=int, default=3, help="validation and test seeds")
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-3, 1e-2, 3e-2])
    parser.add_argument("--aux-weights", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="studies/bench-selection")
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args(argv)
    problems = [p for i in range(args.simulations)
                for p in one_simulation(args, args.first_seed + i)]
    regret: dict[tuple[str, str], list[float]] = defaultdict(list)
    for p in problems:
        for protocol in PROTOCOLS:
            chosen = p["chosen"][protocol]
            for metric, score in p["score"].items():
                best = max(score.values())
                regret[(protocol, metric)].append(
                    math.nan if chosen is None else best - score[chosen])
    lines = ["| protocol | regret, test GAUC (pt) | regret, test AUC (pt) | best cell hit |",
             "|---|---:|---:|---:|"]
    for protocol in PROTOCOLS:
        name = ("one validation seed, argmax of GAUC (before)" if protocol == "before" else
                f"{args.seeds} validation seeds for the leaders, one-se rule on "
                f"{METRIC_NAMES[protocol]}")
        gauc, auc = (np.array(regret[(protocol, m)]) for m in ("gauc", "auc"))
        lines.append(f"| {name} | {100 * np.nanmean(gauc):.3f} | {100 * np.nanmean(auc):.3f} | "
                     f"{int(np.sum(gauc == 0))}/{len(gauc)} |")
    best = {(p["simulation"], p["problem"][0]): max(p["score"]["gauc"].values())
            for p in problems}
    lines += ["", "| simulation · problem | test-best cell (GAUC) | before | one-se GAUC | "
              "one-se AUC | one-se logloss |", "|---|---|---|---|---|---|"]
    for p in problems:
        gauc = p["score"]["gauc"]
        picks = [p["chosen"][k] for k in PROTOCOLS]
        lines.append(f"| {p['simulation']} · {p['problem'][0]} | "
                     f"{max(gauc, key=gauc.__getitem__).label} | "
                     + " | ".join("–" if s is None else s.label for s in picks) + " |")
    gains = [100 * (best[(sim, "moae")] - best[(sim, "base")])
             for sim in sorted({sim for sim, _ in best})]
    data = ("the auxiliary labels permuted within each training day (MAL cannot help)"
            if args.aux_noise else "the simulation as it is")
    body = (f"Simulations: {args.simulations} `{args.size}` sets of {args.users:,} users (seeds "
            f"{args.first_seed}…{args.first_seed + args.simulations - 1}), {data}; problems: "
            f"BASE and MoAE on the last-click target, grid lr {args.lrs} × λ {args.aux_weights} "
            f"(BASE: lr only), {args.seeds} seeds; `{args.preset}` preset otherwise"
            f"{', rows shuffled within days' if args.shuffle else ', rows in file order'}. "
            f"Regret in points (× 100), mean over {len(problems)} problems; hit: the "
            f"selection is the test-best cell (GAUC). Test GAUC of the best MoAE cell − the "
            f"best BASE cell, per simulation: {', '.join(f'{g:+.2f}' for g in gains)} pt.\n\n"
            + "\n".join(lines))
    title = (f"selection regret ({args.size} simulation, {args.users:,} users"
             f"{', shuffled' if args.shuffle else ''}"
             f"{', auxiliary labels permuted' if args.aux_noise else ''})")
    publish(title, "bench_selection", argv, body, report=not args.no_report)


if __name__ == "__main__":
    main()
