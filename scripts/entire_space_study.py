"""Click-space against entire-space (ESMM) training on a simulation whose selection bias is known.

Simulates one data set twice from the same seed: as impression logs (`--impressions`, the
training data) and as clicks (every impression clicked: its labels are what each impression
would have converted to had it been clicked, the counterfactual). Trains MMoE (main view
`linear`, auxiliary `mta`) on the impression logs per training seed, once in the click space
(unclicked rows masked out) and once over the entire space, and compares the two runs' pCVR,
seed by seed with a paired bootstrap over users and seeds (`malt.bootstrap`):

* on the clicked test impressions, against the observed conversions (CVR as ESMM scores it);
* on every test impression and on the unclicked ones, against the counterfactual conversions
  (what only a simulation can score);

and reports each run's calibration to the true conversion probability on clicked and unclicked
impressions. Runs already complete under OUT are reused, as in a study.

    python scripts/entire_space_study.py [--out studies/entire-space] [--size tiny] [--users N]
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


def config(data: Path, seed: int, entire_space: bool) -> RunConfig:
    return RunConfig.from_dict({
        "seed": seed, "data": {"path": str(data)},
        "task": {"main": MAIN, "aux": AUX, "entire_space": entire_space},
        "train": {"lr": 3e-3, "batch_size": "auto", "shuffle": True, "log_every": 1000,
                  "device": "cpu"},
        "model": {"name": "mmoe"}})


def delta_rows(title: str, deltas: dict) -> list[str]:
    """Markdown rows of `paired_bootstrap`'s deltas, in points (× 100)."""
    rows = []
    for metric, d in deltas.items():
        call = {True: "entire better", False: "click better", None: "–"}[d.a_better]
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
    args = parser.parse_args(argv)
    impressions, clicks = args.out / "impressions", args.out / "counterfactual"
    sim = size_config(args.size, seed=args.data_seed, users=args.users)
    if not (impressions / "vocabs").is_dir():
        simulate(sim, impressions, impressions=True)
    if not (clicks / "vocabs").is_dir():
        simulate(sim, clicks)
    cells = {(v, s): Cell(config(impressions, s, on)) for v, on in VARIANTS.items()
             for s in args.seeds}
    outcomes = run_cells(list(cells.values()), args.out / "runs", cpu_jobs=1, device="cpu")
    failed = [key for key, cell in cells.items() if not outcomes[cell.id].ok]
    if failed:
        raise SystemExit(f"runs failed: {failed}")
    runs = {key: RunDir(args.out / "runs" / cell.id) for key, cell in cells.items()}
    preds = {key: Predictions.load(run.predictions_file) for key, run in runs.items()}
    entire = [preds["entire space", s] for s in args.seeds]
    click = [preds["click space", s] for s in args.seeds]

    first = entire[0]
    counterfactual = pq.read_table(clicks / "test" / "test.parquet", columns=[MAIN])[MAIN]
    labels = (counterfactual.to_numpy() > 0).astype(np.float64)
    clicked = first.click > 0
    on_clicks = compare(entire, click, MAIN, resamples=args.resamples)
    everywhere = paired_bootstrap([p.view(MAIN) for p in entire], [p.view(MAIN) for p in click],
                                  labels, first.user, resamples=args.resamples)
    unclicked = paired_bootstrap([p.view(MAIN)[~clicked] for p in entire],
                                 [p.view(MAIN)[~clicked] for p in click], labels[~clicked],
                                 first.user[~clicked], resamples=args.resamples)

    users = "" if args.users is None else f" --users {args.users}"
    lines = [f"Data: `malt simulate --size {args.size}{users} --seed {args.data_seed} "
             "--impressions` "
             f"({len(first.user):,} test impressions, {clicked.mean():.1%} clicked; "
             f"{int(labels.sum()):,} would convert if clicked, "
             f"{int(labels[clicked].sum()):,} of them clicked). MMoE, main `{MAIN}`, "
             f"auxiliary {AUX}, training seeds {args.seeds}.", "",
             "Entire space − click space, pCVR of the main view, points (× 100); paired "
             f"bootstrap over users and {len(args.seeds)} seeds, {args.resamples:,} resamples, "
             "95 % intervals:", "",
             "| rows, labels | metric | Δ | interval | p | call |", "|---|---|---:|---|---:|---|"]
    lines += delta_rows("clicked, observed", on_clicks.deltas)
    lines += delta_rows("every impression, counterfactual", everywhere)
    lines += delta_rows("unclicked, counterfactual", unclicked)
    lines += ["", "pCVR calibration to the true conversion probability (mean pCVR / mean "
              "`true_cvr`; 1 is calibrated), per seed:", "",
              "| training | clicked | unclicked | every impression |", "|---|---|---|---|"]
    for variant in VARIANTS:
        cells_text = []
        for key in ("clicks_calibration", "unclicked_calibration"):
            values = [runs[variant, s].load_metrics().impressions[MAIN][key] for s in args.seeds]
            cells_text.append(" ".join(f"{v:.3f}" for v in values) +
                              f" (mean {statistics.mean(values):.3f})")
        overall = [runs[variant, s].load_metrics().truth[MAIN]["calibration"]
                   for s in args.seeds]
        cells_text.append(" ".join(f"{v:.3f}" for v in overall) +
                          f" (mean {statistics.mean(overall):.3f})")
        lines.append(f"| {variant} | " + " | ".join(cells_text) + " |")
    # The labels' own rate against the truth (itself an estimate), for scale.
    truth = pq.read_table(clicks / "test" / "test.parquet",
                          columns=["true_cvr"])["true_cvr"].to_numpy()
    rates = [labels[rows].mean() / truth[rows].mean()
             for rows in (clicked, ~clicked, np.ones_like(clicked))]
    lines.append("| counterfactual labels (rate / truth) | " +
                 " | ".join(f"{r:.3f}" for r in rates) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
