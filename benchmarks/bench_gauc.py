"""GAUC speed: vectorised `malt.metrics.gauc` versus a per-user scikit-learn loop.

The data set is synthetic, shaped like one MAC test day: 4M rows, 800k users (1 + Poisson(4)
clicks each), float32 scores (so ties occur), a few per cent positives. The per-user loop is the
reference implementation's approach (group rows by user, skip single-class users, one
`roc_auc_score` call per remaining user) made as fair as possible: rows are grouped with one
argsort rather than a mask per user. Unless `--full` is given, the loop runs on a random subset of
users and its time is extrapolated linearly in the number of users; the output says so.

    python -m benchmarks.bench_gauc [--rows 4000000] [--users 800000] [--sample-users 40000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks.report import best_of, update_section
from malt.metrics import attribution_sample_weight, gauc


def synthetic_day(rows: int, users: int, seed: int):
    """Scores [N] float64 (float32 precision), attribution weights [N], user ids [N] int64."""
    rng = np.random.default_rng(seed)
    # Every user clicks at least once; ids are sparse, as hashed ids would be.
    index = rng.permutation(np.r_[np.arange(users), rng.integers(0, users, rows - users)])
    user = index * 7919 + 13
    affinity = rng.normal(0, 1, users)[index]
    logit = -3.5 + affinity + rng.normal(0, 1, rows)
    converted = rng.random(rows) < 1 / (1 + np.exp(-logit))
    weights = np.where(converted, rng.uniform(0.05, 1.0, rows), 0.0)
    scores = (1 / (1 + np.exp(-(logit + rng.normal(0, 1, rows))))).astype(np.float32)
    return scores.astype(np.float64), weights, user


def loop_gauc(scores, labels, user, sample_weight=None):
    """Per-user scikit-learn loop: (GAUC, users counted)."""
    order = np.argsort(user, kind="stable")
    starts = np.flatnonzero(np.r_[True, user[order][1:] != user[order][:-1]])
    num = den = counted = 0
    for rows_u in np.split(order, starts[1:]):
        y = labels[rows_u]
        if y.min() == y.max():
            continue
        w = None if sample_weight is None else sample_weight[rows_u]
        num += len(rows_u) * roc_auc_score(y, scores[rows_u], sample_weight=w)
        den += len(rows_u)
        counted += 1
    return num / den, counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--users", type=int, default=800_000)
    parser.add_argument("--sample-users", type=int, default=40_000,
                        help="users the sklearn loop runs on (extrapolated to all users)")
    parser.add_argument("--full", action="store_true", help="run the sklearn loop on every user")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()

    scores, weights, user = synthetic_day(args.rows, args.users, args.seed)
    labels = (weights > 0).astype(np.float64)
    attribution = attribution_sample_weight(weights)
    n_users = len(np.unique(user))

    t_vec, result = best_of(args.repeats, lambda: gauc(scores, labels, user))
    t_vec_w, result_w = best_of(args.repeats, lambda: gauc(scores, labels, user, attribution))

    if args.full or args.sample_users >= n_users:
        sub, sampled = np.ones(len(user), dtype=bool), n_users
    else:
        rng = np.random.default_rng(args.seed + 1)
        chosen = rng.choice(np.unique(user), args.sample_users, replace=False)
        sub, sampled = np.isin(user, chosen), args.sample_users
    t0 = time.perf_counter()
    loop_value, loop_users = loop_gauc(scores[sub], labels[sub], user[sub])
    t_loop_sub = time.perf_counter() - t0
    t_loop = t_loop_sub * n_users / sampled
    check = gauc(scores[sub], labels[sub], user[sub])
    diff = abs(check.value - loop_value)
    assert check.users == loop_users and diff < 1e-9, (check.users, loop_users, diff)

    extrapolated = sampled < n_users
    loop_note = (f"timed on {sampled:,} random users ({sub.sum():,} rows, {t_loop_sub:.2f} s) and "
                 f"extrapolated linearly to {n_users:,} users" if extrapolated
                 else "timed on every user")
    lines = [
        f"Synthetic day: {args.rows:,} rows, {n_users:,} users, "
        f"{labels.mean():.2%} positives, float32 scores (ties), seed {args.seed}.",
        "",
        "| computation | seconds | users counted | GAUC |",
        "|---|---:|---:|---:|",
        f"| `malt.metrics.gauc`, binarised | {t_vec:.2f} | {result.users:,} | {result.value:.6f} |",
        f"| `malt.metrics.gauc`, attribution-weighted | {t_vec_w:.2f} | {result_w.users:,} | "
        f"{result_w.value:.6f} |",
        f"| per-user `roc_auc_score` loop, binarised | {t_loop:.1f}"
        f"{' (extrapolated)' if extrapolated else ''} | | |",
        "",
        f"Speed-up of the vectorised GAUC over the loop: **{t_loop / t_vec:.0f}×** (target ≥ 50×). "
        f"Vectorised times are the best of {args.repeats} runs; the loop was {loop_note}. "
        f"On the loop's rows both give the same GAUC (|difference| = {diff:.1e}, "
        f"{loop_users:,} users counted).",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_report:
        command = "python -m benchmarks.bench_gauc" + (" --full" if args.full else "")
        update_section("GAUC", command, body)


if __name__ == "__main__":
    main()
