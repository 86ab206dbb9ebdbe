"""Paired user-bootstrap speed: `malt.bootstrap.paired_bootstrap` against a loop of replicates.

Two models on a synthetic day shaped like one MAC test day (4M rows, 800k users; the GAUC
benchmark's day), 1,000 replicates of Δ AUC, Δ GAUC and Δ logloss, and a second, smaller day
of the size of a user's own test set (38k rows), where AUC is recomputed exactly. The loop is
what one would write without the per-user sums: per replicate, gather the drawn users' rows and
call `malt.metrics` (itself vectorised) for each model; it is timed on a few replicates and
extrapolated. The floor is drawing the replicates' user counts alone, which every user
bootstrap must do.

    python -m benchmarks.bench_bootstrap [--rows 4000000] [--users 800000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.bench_gauc import synthetic_day
from benchmarks.report import best_of, invocation, update_section
from malt.bootstrap import paired_bootstrap
from malt.metrics import auc, gauc, logloss


def two_models(rows: int, users: int, seed: int):
    """Labels [N], users [N] and two correlated models' probabilities [N] each."""
    scores, weights, user = synthetic_day(rows, users, seed)
    rng = np.random.default_rng(seed + 1)
    logit = np.log(scores / (1 - scores))
    other = (1 / (1 + np.exp(-(logit + rng.normal(0, 0.3, rows))))).astype(np.float32)
    return (weights > 0).astype(np.float64), user, scores, other.astype(np.float64)


def draw_counts(users: int, resamples: int, seed: int) -> None:
    """The floor: every replicate's user draw counts, in the blocks the bootstrap uses."""
    rng = np.random.default_rng(seed)
    block = max(1, 16_000_000 // users)
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        draws = rng.integers(0, users, (size, users)) + users * np.arange(size)[:, None]
        np.bincount(draws.ravel(), minlength=size * users)


def loop_seconds(labels, user, a, b, replicates: int) -> float:
    """Seconds per replicate of the loop: gather the drawn users' rows, then the metrics."""
    ids, index = np.unique(user, return_inverse=True)
    order = np.argsort(index, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(index, minlength=len(ids)))]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(replicates):
        drawn = rng.integers(0, len(ids), len(ids))
        lengths = starts[drawn + 1] - starts[drawn]
        # Rows of the k-th drawn user, as a new user k.
        first = np.repeat(starts[drawn] - np.cumsum(lengths) + lengths, lengths)
        rows = order[first + np.arange(lengths.sum())]
        new_user = np.repeat(np.arange(len(drawn)), lengths)
        for scores in (a, b):
            auc(scores[rows], labels[rows])
            gauc(scores[rows], labels[rows], new_user)
            logloss(scores[rows], labels[rows])
    return (time.perf_counter() - t0) / replicates


def measure(rows: int, users: int, resamples: int, loop_replicates: int, repeats: int):
    labels, user, a, b = two_models(rows, users, 0)
    n_users = len(np.unique(user))
    seconds, deltas = best_of(repeats, lambda: paired_bootstrap(
        [a], [b], labels, user, resamples=resamples, seed=1))
    floor, _ = best_of(repeats, lambda: draw_counts(n_users, resamples, 1))
    loop = loop_seconds(labels, user, a, b, loop_replicates) * resamples
    return {"rows": rows, "users": n_users, "seconds": seconds, "floor": floor, "loop": loop,
            "deltas": deltas}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--users", type=int, default=800_000)
    parser.add_argument("--small-rows", type=int, default=38_000)
    parser.add_argument("--small-users", type=int, default=8_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--loop-replicates", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args(argv)

    results = [measure(args.rows, args.users, args.resamples, args.loop_replicates,
                       args.repeats),
               measure(args.small_rows, args.small_users, args.resamples,
                       args.loop_replicates * 20, args.repeats)]
    lines = ["| day | users | `paired_bootstrap` (s) | floor: draw counts (s) | × floor | "
             "loop of replicates (s, extrapolated) | speed-up | Δ GAUC (pt) [95 %] |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r['rows']:,} rows | {r['users']:,} | {r['seconds']:.1f} | "
                     f"{r['floor']:.1f} | {r['seconds'] / r['floor']:.1f} | {r['loop']:.0f} | "
                     f"{r['loop'] / r['seconds']:.0f}× | {r['deltas']['gauc'].points()} |")
    body = "\n".join([
        f"Two correlated models, {args.resamples:,} replicates of Δ AUC, Δ GAUC and Δ logloss, "
        "one seed; synthetic days as in the GAUC benchmark (float32 scores, ties). Bootstrap and "
        f"floor: best of {args.repeats}. The loop was timed on {args.loop_replicates} replicates "
        f"of the large day and {args.loop_replicates * 20} of the small one. On the large day "
        "AUC goes through the user-pair win matrix's row and column sums, on the small one it "
        "is recomputed exactly per replicate.", "", *lines])
    print(body)
    if not args.no_report:
        update_section("Paired bootstrap", invocation("bench_bootstrap", argv), body)


if __name__ == "__main__":
    main()
