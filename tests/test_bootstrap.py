"""The paired user bootstrap: replicates against a recomputation on resampled rows, interval
coverage on scores with a known difference, paired against unpaired widths, seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

import malt.bootstrap as bootstrap
from malt.bootstrap import paired_bootstrap, user_replicates
from malt.metrics import gauc, logloss


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def seeded_day(users: int, rows: int, seed: int, seeds: int, noise_a: float = 0.8,
               noise_b: float = 1.0):
    """Labels, users and `seeds` training seeds of two models' probabilities on one synthetic
    day: every seed of either model sees the true latent score through its own independent
    noise, A through less of it, so the seeds differ row by row but not in quality."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, rows) * 7 + 3  # sparse ids
    latent = rng.normal(0, 1, users)[(user - 3) // 7] + rng.normal(0, 1, rows)
    labels = (rng.random(rows) < _sigmoid(latent - 2)).astype(np.float64)
    a, b = [], []
    for _ in range(seeds):
        a.append(_sigmoid(latent - 2 + rng.normal(0, noise_a, rows)))
        b.append(_sigmoid(latent - 2 + rng.normal(0, noise_b, rows)))
    return labels, user, a, b


def day(users: int, rows: int, seed: int, noise_a: float = 0.8, noise_b: float = 1.0,
        ties: bool = True):
    """One seed of `seeded_day`, A's probabilities rounded to 2 decimals when `ties`."""
    labels, user, (a,), (b,) = seeded_day(users, rows, seed, 1, noise_a, noise_b)
    if ties:
        a = np.round(a, 2)
    return labels, user, a, b


def resampled_metrics(scores, labels, user, draws):
    """Slow reference: build the resampled rows (each drawn user's rows once per draw, as a
    new user) and compute AUC and per-user AUCs with scikit-learn, a loop per user (malt's
    logloss, checked against scikit-learn's elsewhere, clips as the bootstrap does)."""
    ids = np.unique(user)
    rows_of = {u: np.flatnonzero(user == u) for u in ids}
    take = np.concatenate([rows_of[ids[d]] for d in draws])
    new_user = np.concatenate([np.full(len(rows_of[ids[d]]), k) for k, d in enumerate(draws)])
    s, y = scores[take], labels[take]
    num = den = 0.0
    for k in range(len(draws)):
        mine = new_user == k
        if 0 < y[mine].sum() < mine.sum():
            num += mine.sum() * roc_auc_score(y[mine], s[mine])
            den += mine.sum()
    return {"auc": roc_auc_score(y, s), "gauc": num / den, "logloss": logloss(s, y)}


def test_replicates_match_a_recomputation_on_resampled_rows():
    labels, user, a, b = day(users=150, rows=1200, seed=1)
    replicates = user_replicates([a, b], labels, user, resamples=6, seed=5)
    users = len(np.unique(user))
    draws = np.random.default_rng(5).integers(0, users, (6, users))
    for k in range(6):
        for model, scores in enumerate((a, b)):
            expected = resampled_metrics(scores, labels, user, draws[k])
            for metric in ("auc", "gauc", "logloss"):
                assert replicates.values[metric][k, model] == pytest.approx(expected[metric],
                                                                            abs=1e-12)


@pytest.mark.parametrize("exact", [True, False])
def test_the_observed_metrics_are_those_of_the_day(monkeypatch, exact):
    labels, user, a, b = day(users=300, rows=2500, seed=9)
    monkeypatch.setattr(bootstrap, "EXACT_AUC_CELLS", 10**12 if exact else 0)
    observed = user_replicates([a, b], labels, user, resamples=3).observed
    for model, scores in enumerate((a, b)):
        assert observed["auc"][model] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert observed["gauc"][model] == pytest.approx(gauc(scores, labels, user).value,
                                                        abs=1e-12)
        assert observed["logloss"][model] == pytest.approx(logloss(scores, labels), abs=1e-12)


def test_the_approximate_auc_of_a_large_day_stays_within_a_twentieth_of_its_spread(monkeypatch):
    labels, user, a, _ = day(users=5000, rows=30000, seed=1)
    monkeypatch.setattr(bootstrap, "EXACT_AUC_CELLS", 0)
    replicates = user_replicates([a], labels, user, metrics=["auc"], resamples=40, seed=5)
    ids, index = np.unique(user, return_inverse=True)
    draws = np.random.default_rng(5).integers(0, len(ids), (40, len(ids)))
    exact = [roc_auc_score(labels, a, sample_weight=np.bincount(d, minlength=len(ids))[index])
             for d in draws]
    # The dropped terms between two distinct users shrink as 1/U, the spread as 1/√U.
    error = np.abs(replicates.values["auc"][:, 0] - exact).max()
    assert 0 < error < 0.05 * np.std(exact)


def test_the_approximate_auc_is_exact_when_one_user_is_drawn_more_than_once():
    labels, user, a, _ = day(users=50, rows=500, seed=2)
    shared = bootstrap._Shared.of(labels, user)
    user_auc = gauc(a, labels, shared.index).user_auc
    row_sums, column_sums, diagonal = bootstrap._auc_terms(a, labels, shared, user_auc)
    counts = np.ones(len(shared.rows))
    counts[7] = 3
    wins = (counts @ row_sums) * (counts @ column_sums) / row_sums.sum() + \
        (counts - 1) ** 2 @ diagonal
    approximate = wins / ((counts @ shared.positives) * (counts @ shared.negatives))
    assert approximate == pytest.approx(roc_auc_score(labels, a, sample_weight=counts[
        shared.index]), abs=1e-12)


def test_same_seed_same_replicates_other_seed_others():
    labels, user, a, b = day(users=300, rows=2000, seed=3)
    first = user_replicates([a, b], labels, user, resamples=20, seed=1)
    again = user_replicates([a, b], labels, user, resamples=20, seed=1)
    other = user_replicates([a, b], labels, user, resamples=20, seed=2)
    assert all(np.array_equal(first.values[m], again.values[m]) for m in first.values)
    assert not np.array_equal(first.values["gauc"], other.values["gauc"])


@pytest.fixture(scope="module")
def true_deltas() -> dict[str, float]:
    """Each metric of A minus B on a very large day: the truth the intervals aim at (the same
    for every seed, as the seeds differ only row by row)."""
    labels, user, a, b = day(users=200_000, rows=1_000_000, seed=99, ties=False)
    return {"auc": roc_auc_score(labels, a) - roc_auc_score(labels, b),
            "gauc": gauc(a, labels, user).value - gauc(b, labels, user).value,
            "logloss": logloss(a, labels) - logloss(b, labels)}


def coverage(truth: dict[str, float], days: int, seeds: int) -> dict[str, float]:
    """Per metric, the share of `days` independent small days (300 users, 2,000 rows) whose
    95 % interval, pooled over `seeds` seeds, covers the true difference."""
    covered = dict.fromkeys(truth, 0)
    for k in range(days):
        labels, user, a, b = seeded_day(users=300, rows=2000, seed=1000 + k, seeds=seeds)
        deltas = paired_bootstrap(a, b, labels, user, resamples=200, seed=k)
        for metric, delta in deltas.items():
            covered[metric] += delta.low <= truth[metric] <= delta.high
    return {metric: count / days for metric, count in covered.items()}


@pytest.fixture(scope="module")
def one_seed_coverage(true_deltas) -> dict[str, float]:
    return coverage(true_deltas, days=400, seeds=1)


@pytest.mark.parametrize("metric", ["auc", "gauc", "logloss"])
def test_the_interval_covers_the_true_difference_95_percent_of_the_time(one_seed_coverage,
                                                                         metric):
    # Over 400 independent days a correct 95 % interval's coverage has a standard deviation
    # of √(0.95 · 0.05 / 400) = 1.1 points: the band 0.91–0.99 is 3.7 of them either side.
    # An interval 1.5 times too wide covers 99.7 %: it passes the upper bound (4 misses or
    # fewer of 400) with a probability of about 4 % (Poisson, mean 1.3 misses).
    assert 0.91 <= one_seed_coverage[metric] <= 0.99


def test_the_interval_pooled_over_seeds_covers_the_true_difference(true_deltas):
    pooled = coverage(true_deltas, days=200, seeds=2)
    # Only a lower bound: seeds that differ only row by row make the pooled interval
    # conservative (0.987 to 1.0 per metric, measured with 2 and 3 seeds over 300 and 400
    # days), since drawing the seeds recounts noise that drawing the users already counts.
    assert min(pooled.values()) >= 0.91, pooled


def test_a_paired_interval_is_narrower_than_an_unpaired_one():
    labels, user, a, _ = day(users=1000, rows=8000, seed=4, ties=False)
    # Two models that share most of what they get wrong, as two runs on one data set do.
    logit_a = np.log(a / (1 - a))
    b = _sigmoid(logit_a + np.random.default_rng(0).normal(0, 0.5, len(a)))
    paired = user_replicates([a, b], labels, user, metrics=["gauc"], resamples=500, seed=1)
    other = user_replicates([b], labels, user, metrics=["gauc"], resamples=500, seed=2)
    paired, other = paired.values["gauc"], other.values["gauc"]
    paired_width = np.std(paired[:, 0] - paired[:, 1])
    unpaired_width = np.std(paired[:, 0] - other[:, 0])
    # Unpaired, the two variances add up; paired, the shared difficulty of the users cancels.
    assert unpaired_width == pytest.approx(np.sqrt(paired[:, 0].var() + other[:, 0].var()),
                                           rel=0.1)
    assert paired_width < 0.6 * unpaired_width


def test_identical_seeds_give_the_one_seed_interval_and_divergent_seeds_widen_it():
    labels, user, a, b = day(users=500, rows=4000, seed=5)
    one = paired_bootstrap([a], [b], labels, user, metrics=["auc"], resamples=300)["auc"]
    same = paired_bootstrap([a, a, a], [b, b, b], labels, user, metrics=["auc"],
                            resamples=300)["auc"]
    assert (same.low, same.high, same.estimate) == pytest.approx((one.low, one.high,
                                                                  one.estimate))
    assert same.seeds == 3
    worse = np.clip(a + np.random.default_rng(0).normal(0, 0.3, len(a)), 0, 1)
    mixed = paired_bootstrap([a, worse, a], [b, b, b], labels, user, metrics=["auc"],
                             resamples=300)["auc"]
    assert mixed.high - mixed.low > 1.5 * (one.high - one.low)


def test_identical_models_differ_by_nothing():
    labels, user, a, _ = day(users=300, rows=2000, seed=6)
    for delta in paired_bootstrap([a], [a], labels, user, resamples=200).values():
        assert (delta.estimate, delta.low, delta.high, delta.p_value) == (0, 0, 0, 1)
        assert not delta.excludes_zero and delta.a_better is None


def test_a_clearly_better_model_is_called_better_on_every_metric():
    labels, user, a, b = day(users=2000, rows=20000, seed=7, noise_a=0.3, noise_b=1.5)
    deltas = paired_bootstrap([a], [b], labels, user, resamples=300)
    assert deltas["auc"].estimate > 0 and deltas["logloss"].estimate < 0
    for delta in deltas.values():
        assert delta.a_better is True
        assert delta.p_value == pytest.approx(2 / 301)
    reverse = paired_bootstrap([b], [a], labels, user, resamples=300)
    assert all(d.a_better is False for d in reverse.values())


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 100))
def test_swapping_the_models_negates_the_difference(data_seed, draw_seed):
    labels, user, a, b = day(users=30, rows=200, seed=data_seed)
    forward = paired_bootstrap([a], [b], labels, user, resamples=50, seed=draw_seed)
    backward = paired_bootstrap([b], [a], labels, user, resamples=50, seed=draw_seed)
    for metric, delta in forward.items():
        back = backward[metric]
        if math.isnan(delta.estimate):
            assert math.isnan(back.estimate)
            continue
        assert (back.estimate, back.low, back.high) == pytest.approx(
            (-delta.estimate, -delta.high, -delta.low), abs=1e-12)
        assert back.p_value == delta.p_value


def test_unpaired_inputs_are_refused():
    labels, user, a, b = day(users=30, rows=200, seed=8)
    with pytest.raises(ValueError, match="pair one score vector"):
        paired_bootstrap([a, a], [b], labels, user, resamples=10)
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap([a[:-1]], [b[:-1]], labels, user, resamples=10)
    with pytest.raises(ValueError, match="unknown metrics"):
        paired_bootstrap([a], [b], labels, user, metrics=["ndcg"], resamples=10)
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([a], [b], labels, user, level=1.0, resamples=10)
