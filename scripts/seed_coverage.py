"""How often the paired interval pooled over seeds covers the true difference, by seed count.

Synthetic days as in `tests/test_bootstrap.py` (users with a latent score, labels drawn from
it), but each training seed of the candidate is, at random, a good or a poor model (noise 0.5
or 1.1 on the latent score) against a baseline of noise 1.0: seeds that differ in quality, not
only row by row. The truth is the mean difference of the two candidate kinds on a very large
day. Prints, per seed count, the share of independent days whose 95 % interval covers it.

    python scripts/seed_coverage.py [--days 200] [--seeds 3 5 10] [--seed 1000]
"""

from __future__ import annotations

import argparse

import numpy as np

from malt.bootstrap import paired_bootstrap
from malt.metrics import auc, gauc, logloss

CANDIDATE_NOISE = (0.5, 1.1)
BASELINE_NOISE = 1.0
METRICS = ("auc", "gauc", "logloss")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def synthetic_day(rng: np.random.Generator, users: int, rows: int,
                  candidate_noise: list[float]) -> tuple:
    """Labels [N], users [N] and, per seed, the candidate's and the baseline's scores [N]."""
    user = rng.integers(0, users, rows)
    latent = rng.normal(0, 1, users)[user] + rng.normal(0, 1, rows) - 2
    labels = (rng.random(rows) < _sigmoid(latent)).astype(np.float64)
    candidate = [_sigmoid(latent + rng.normal(0, n, rows)) for n in candidate_noise]
    baseline = [_sigmoid(latent + rng.normal(0, BASELINE_NOISE, rows)) for _ in candidate_noise]
    return labels, user, candidate, baseline


def true_differences(seed: int) -> dict[str, float]:
    """The mean over the two candidate kinds of each metric's difference, on 10⁶ rows."""
    labels, user, candidate, baseline = synthetic_day(np.random.default_rng(seed), 200_000,
                                                      1_000_000, list(CANDIDATE_NOISE))
    scores = {"auc": lambda p: auc(p, labels), "gauc": lambda p: gauc(p, labels, user).value,
              "logloss": lambda p: logloss(p, labels)}
    return {m: float(np.mean([scores[m](a) - scores[m](b) for a, b in zip(candidate, baseline)]))
            for m in METRICS}


def coverage(truth: dict[str, float], seeds: int, days: int, seed: int) -> dict[str, float]:
    """Share of `days` days (300 users, 2,000 rows) whose interval covers `truth`, per metric."""
    covered = dict.fromkeys(METRICS, 0)
    for k in range(days):
        rng = np.random.default_rng(seed + k)
        noise = list(rng.choice(CANDIDATE_NOISE, seeds))
        labels, user, candidate, baseline = synthetic_day(rng, 300, 2000, noise)
        deltas = paired_bootstrap(candidate, baseline, labels, user, metrics=list(METRICS),
                                  resamples=200, seed=k)
        for metric in METRICS:
            covered[metric] += deltas[metric].low <= truth[metric] <= deltas[metric].high
    return {metric: count / days for metric, count in covered.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args(argv)
    truth = true_differences(99)
    print("| seeds | " + " | ".join(METRICS) + " |")
    print("|---:|" + "---:|" * len(METRICS))
    for seeds in args.seeds:
        shares = coverage(truth, seeds, args.days, args.seed)
        print(f"| {seeds} | " + " | ".join(f"{shares[m]:.3f}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
