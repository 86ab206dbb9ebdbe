"""Last-click GAUC by path complexity, split by the kind of pair, with the simulated truth.

GAUC counts, within each user, pairs of a last-click positive and a negative. A negative is a
*mate* when a purchase credits it under the linear rule (a click of a converting journey that
is not its last), else an *outsider*. Per path-complexity group (MAC paper Fig. 5) this prints
the share of mates among the negatives and the GAUC over all pairs, over the mate pairs and
over the outsider pairs, of the truth (`true_cvr`, the chance that a click's journey ends in a
purchase) and, when runs are given, of each set of runs (mean over their seeds).

    python scripts/truth_paths.py DATA [NAME=RUN[,RUN...] ...]
    python scripts/truth_paths.py data/sim base=runs/base-s1,runs/base-s2 moae=runs/moae-s1

Every run must have been scored on the test day of DATA (its `predictions.npz`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from malt.data.schema import MAC
from malt.eval.predictions import Predictions
from malt.metrics import DEFAULT_COMPLEXITY_EDGES, gauc, path_complexity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("runs", nargs="*", help="NAME=RUN[,RUN...]: runs averaged as NAME")
    args = parser.parse_args()
    table = pq.read_table(args.data / "test" / "test.parquet",
                          columns=[MAC.user_column, "last", "linear",
                                   MAC.true_probability_column])
    user = table[MAC.user_column].to_numpy().astype(np.int64)
    last = (table["last"].to_numpy() > 0).astype(np.float64)
    linear = table["linear"].to_numpy()
    scorers = {"truth": [table[MAC.true_probability_column].to_numpy()]}
    for spec in args.runs:
        name, paths = spec.split("=", 1)
        loaded = [Predictions.load(Path(p) / "predictions.npz") for p in paths.split(",")]
        # Runs number users through their vocab: the rows are the test day's, in file order.
        scorers[name] = [p.view("last") for p in loaded]
    ids = np.unique(user)
    complexity = path_complexity(ids, user, linear, last)[np.searchsorted(ids, user)]
    mate = (last == 0) & (linear > 0)
    kinds = {"all": np.ones_like(mate), "mates": last.astype(bool) | mate,
             "outsiders": last.astype(bool) | (linear == 0)}
    edges = (*DEFAULT_COMPLEXITY_EDGES, np.inf)
    groups = [("all", np.isfinite(complexity))] + [
        (f"[{lo:g}, {hi:g})", (complexity >= lo) & (complexity < hi))
        for lo, hi in zip(edges[:-1], edges[1:])]
    head = f"{'group':<11}{'users':>6}{'mates':>7}"
    head += "".join(f"{f'{name} {kind}':>{max(len(name) + len(kind) + 2, 9)}}"
                    for name in scorers for kind in kinds)
    print(head)
    for label, rows in groups:
        line = f"{label:<11}{len(np.unique(user[rows])):>6}"
        line += f"{mate[rows].sum() / max((rows & (last == 0)).sum(), 1):>7.1%}"
        for name, runs in scorers.items():
            for kind, keep in kinds.items():
                take = rows & keep
                value = np.mean([gauc(s[take], last[take], user[take]).value for s in runs])
                line += f"{value:>{max(len(name) + len(kind) + 2, 9)}.4f}"
        print(line)
    print("mates: share of the last-click negatives that a purchase credits (linear > 0); "
          "GAUC over all pairs, over last-vs-mate pairs, over last-vs-outsider pairs")


if __name__ == "__main__":
    main()
