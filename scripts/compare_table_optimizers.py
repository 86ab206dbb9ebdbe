"""Test-day GAUC of each optimiser of the embedding tables on the `small` study's setting.

Trains BASE and MoAE (last-click target, the reference auxiliary set) for each seed with every
`--optimizers` value and prints one Markdown row per (model, seed); the settings are the `small`
preset's (release defaults, lr 3e-3, batch 4096, days in file order). Runs already complete under
OUT are reused, as in a study.

    python scripts/compare_table_optimizers.py [--out studies/table-optimizers] [--jobs 2]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from malt.data.schema import MAC
from malt.experiments.cells import Cell
from malt.experiments.scheduler import run_cells
from malt.experiments.study import reference_aux
from malt.runs.config import RunConfig
from malt.sources.simulate import simulate, size_config


def config(data: Path, model: str, seed: int, table_optimizer: str) -> RunConfig:
    return RunConfig.from_dict({
        "seed": seed, "data": {"path": str(data)},
        "task": {"main": "last", "aux": list(reference_aux(model, "last", MAC.labels))},
        "train": {"lr": 3e-3, "batch_size": 4096, "log_every": 1000, "device": "cpu",
                  "table_optimizer": table_optimizer},
        "model": {"name": model, "release_defaults": True}})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("studies/table-optimizers"))
    parser.add_argument("--models", nargs="+", default=["base", "moae"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2026, 2027, 2028])
    parser.add_argument("--optimizers", nargs="+", default=["dense", "rows"])
    parser.add_argument("--data-seed", type=int, default=2024)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    data = args.out / "data"
    if not (data / "vocabs").is_dir():
        simulate(size_config("small", seed=args.data_seed), data)
    cells = {(m, s, o): Cell(config(data, m, s, o)) for m in args.models for s in args.seeds
             for o in args.optimizers}
    outcomes = run_cells(list(cells.values()), args.out / "runs", jobs=args.jobs, cpu_jobs=None)
    gauc = {key: outcomes[cell.id].metrics.views["last"].gauc for key, cell in cells.items()
            if outcomes[cell.id].ok}
    first, *others = args.optimizers
    print("| model | seed | " + " | ".join(args.optimizers) + " | "
          + " | ".join(f"{o} - {first} (pt)" for o in others) + " |")
    print("|---|---|" + "---:|" * (2 * len(args.optimizers) - 1))
    for m in args.models:
        for s in args.seeds:
            values = [gauc.get((m, s, o)) for o in args.optimizers]
            cells_text = [f"{v:.4f}" if v is not None else "failed" for v in values]
            deltas = [f"{100 * (v - values[0]):+.2f}" if None not in (v, values[0]) else "-"
                      for v in values[1:]]
            print(f"| {m} | {s} | " + " | ".join(cells_text + deltas) + " |")
    for m in args.models:
        for o in args.optimizers:
            values = [gauc[(m, s, o)] for s in args.seeds if (m, s, o) in gauc]
            if len(values) > 1:
                print(f"{m} {o}: mean {statistics.mean(values):.4f} "
                      f"± {statistics.stdev(values):.4f} (sd over seeds)")


if __name__ == "__main__":
    main()
