"""Click-space against entire-space (ESMM) training on a simulation whose selection bias is known.

Simulates one data set twice from the same seed: as impression logs (`--impressions`, the
training data) and as clicks (every impression clicked: its labels are what each impression
would have converted to had it been clicked, the counterfactual). Trains each model of
`--models` (MMoE and MoAE by default; main view `linear`, auxiliary `mta`) on the impression logs
per training seed, once in the click space (unclicked rows masked out) and once over the entire
space, and compares the two runs' pCVR, seed by seed with a paired bootstrap over users and
seeds (`malt.bootstrap`):

* on the clicked test impressions, against the observed conversions (CVR as ESMM scores it);
* on every test impression and on the unclicked ones, against the counterfactual conversions
  (what only a simulation can score);

reports each run's calibration to the true conversion probability on clicked and unclicked
impressions, and, with several models, each later model against the first, both trained over
the entire space, on the same rows. Runs already complete under OUT are reused, as in a study.

    python scripts/entire_space_study.py [--out studies/entire-space] [--size tiny] [--users N]
        [--models mmoe moae]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from malt.bootstrap import paired_bootstrap
from malt.eval.compare import TITLES, compare
from malt.eval.options import DEFAULT_RESAMPLES
from malt.eval.predictions import Predictions
from malt.experiments.cells import Cell
from malt.experiments.scheduler import run_cells
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.sources.simulate import simulate, size_config

MAIN, AUX = "linear", ["mta"]
VARIANTS = {"click space": False, "entire space": True}
TRAITS = {"mmoe": "MMoE", "moae": "MoAE"}


def config(data: Path, model: str, seed: int, entire_space: bool) -> RunConfig:
    return RunConfig.from_dict({
        "seed": seed, "data": {"path": str(data)},
        "task": {"main": MAIN, "aux": AUX, "entire_space": entire_space},
        "train": {"lr": 3e-3, "batch_size": "auto", "shuffle": True, "log_every": 1000,
                  "device": "cpu"},
        "model": {"name": model}})


def delta_rows(title: str, deltas: dict, calls: tuple[str, str] = ("entire", "click")
               ) -> list[str]:
    """Markdown rows of `paired_bootstrap`'s deltas, in points (× 100)."""
    rows = []
    for metric, d in deltas.items():
        call = {True: f"{calls[0]} better", False: f"{calls[1]} better", None: "–"}[d.a_better]
        rows.append(f"| {title} | {TITLES[metric]} | {100 * d.estimate:+.2f} | "
                    f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}] | {d.p_value:.3f} | {call} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("studies/entire-space"))
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--users", type=int, default=None, help="override the size's users")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2026, 2027, 2028])
    parser.add_argument("--data-seed", type=int, default=2024)
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--models", nargs="+", default=list(TRAITS), choices=list(TRAITS))
    args = parser.parse_args(argv)
    impressions, clicks = args.out / "impressions", args.out / "counterfactual"
    sim = size_config(args.size, seed=args.data_seed, users=args.users)
    if not (impressions / "vocabs").is_dir():
        simulate(sim, impressions, impressions=True)
    if not (clicks / "vocabs").is_dir():
        simulate(sim, clicks)
    # Seed by seed, so that the first pairs are done first.
    cells = {(m, v, s): Cell(config(impressions, m, s, on)) for m in args.models
             for s in args.seeds for v, on in VARIANTS.items()}
    outcomes = run_cells(list(cells.values()), args.out / "runs", cpu_jobs=1, device="cpu")
    failed = [key for key, cell in cells.items() if not outcomes[cell.id].ok]
    if failed:
        raise SystemExit(f"runs failed: {failed}")
    runs = {key: RunDir(args.out / "runs" / cell.id) for key, cell in cells.items()}
    preds = {key: Predictions.load(run.predictions_file) for key, run in runs.items()}

    first = preds[args.models[0], "entire space", args.seeds[0]]
    counterfactual = pq.read_table(clicks / "test" / "test.parquet", columns=[MAIN])[MAIN]
    labels = (counterfactual.to_numpy() > 0).astype(np.float64)
    clicked = first.click > 0
    users = "" if args.users is None else f" --users {args.users}"
    names = ", ".join(TRAITS[m] for m in args.models)
    lines = [f"Data: `malt simulate --size {args.size}{users} --seed {args.data_seed} "
             "--impressions` "
             f"({len(first.user):,} test impressions, {clicked.mean():.1%} clicked; "
             f"{int(labels.sum()):,} would convert if clicked, "
             f"{int(labels[clicked].sum()):,} of them clicked). {names}, main `{MAIN}`, "
             f"auxiliary {AUX}, training seeds {args.seeds}.", ""]

    def side(model: str, variant: str) -> list[Predictions]:
        return [preds[model, variant, s] for s in args.seeds]

    def deltas(a: list[Predictions], b: list[Predictions], calls: tuple[str, str]
               ) -> list[str]:
        """Rows of a − b on the clicks (observed), everywhere and unclicked (counterfactual)."""
        on_clicks = compare(a, b, MAIN, resamples=args.resamples)
        everywhere = paired_bootstrap([p.view(MAIN) for p in a], [p.view(MAIN) for p in b],
                                      labels, first.user, resamples=args.resamples)
        unclicked = paired_bootstrap([p.view(MAIN)[~clicked] for p in a],
                                     [p.view(MAIN)[~clicked] for p in b], labels[~clicked],
                                     first.user[~clicked], resamples=args.resamples)
        return [*delta_rows("clicked, observed", on_clicks.deltas, calls),
                *delta_rows("every impression, counterfactual", everywhere, calls),
                *delta_rows("unclicked, counterfactual", unclicked, calls)]

    header = ["| rows, labels | metric | Δ | interval | p | call |", "|---|---|---:|---|---:|---|"]
    interval = (f"paired bootstrap over users and {len(args.seeds)} seeds, "
                f"{args.resamples:,} resamples, 95 % intervals")
    for model in args.models:
        lines += [*([""] if lines[-1] else []), f"### {TRAITS[model]}", "",
                  f"Entire space − click space, pCVR of the main view, points (× 100); "
                  f"{interval}:", "", *header,
                  *deltas(side(model, "entire space"), side(model, "click space"),
                          ("entire", "click"))]
    for model in args.models[1:]:
        base = args.models[0]
        lines += ["", f"### {TRAITS[model]} − {TRAITS[base]}", "",
                  f"{TRAITS[model]} − {TRAITS[base]}, both trained over the entire space, pCVR "
                  f"of the main view, points (× 100); {interval}:", "", *header,
                  *deltas(side(model, "entire space"), side(base, "entire space"),
                          (TRAITS[model], TRAITS[base]))]
    lines += ["", "pCVR calibration to the true conversion probability (mean pCVR / mean "
              "`true_cvr`; 1 is calibrated), per seed:", "",
              "| training | clicked | unclicked | every impression |", "|---|---|---|---|"]
    for model in args.models:
        for variant in VARIANTS:
            cells_text = []
            metrics = [runs[model, variant, s].load_metrics() for s in args.seeds]
            for key in ("clicks_calibration", "unclicked_calibration"):
                values = [m.impressions[MAIN][key] for m in metrics]
                cells_text.append(" ".join(f"{v:.3f}" for v in values) +
                                  f" (mean {statistics.mean(values):.3f})")
            overall = [m.truth[MAIN]["calibration"] for m in metrics]
            cells_text.append(" ".join(f"{v:.3f}" for v in overall) +
                              f" (mean {statistics.mean(overall):.3f})")
            lines.append(f"| {TRAITS[model]}, {variant} | " + " | ".join(cells_text) + " |")
    # The labels' own rate against the truth (itself an estimate), for scale.
    truth = pq.read_table(clicks / "test" / "test.parquet",
                          columns=["true_cvr"])["true_cvr"].to_numpy()
    rates = [labels[rows].mean() / truth[rows].mean()
             for rows in (clicked, ~clicked, np.ones_like(clicked))]
    lines.append("| counterfactual labels (rate / truth) | " +
                 " | ".join(f"{r:.3f}" for r in rates) + " |")
    lines += ["", "Entire-space runs' own scores over every impression (metrics.json, "
              "`impressions`), mean over seeds:", "",
              "| model | CTR AUC (clicks) | CTCVR AUC |", "|---|---:|---:|"]
    for model in args.models:
        scores = [runs[model, "entire space", s].load_metrics().impressions[MAIN]
                  for s in args.seeds]
        lines.append(f"| {TRAITS[model]} | {statistics.mean(x['ctr_auc'] for x in scores):.4f} "
                     f"| {statistics.mean(x['ctcvr_auc'] for x in scores):.4f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
