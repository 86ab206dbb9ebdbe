"""`paired_target_bootstrap` and `target_metrics`: on 0/1 labels the usual metrics and the
same replicates as `paired_bootstrap`; against a probability, the definitions recomputed by
brute force and with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss, roc_auc_score

from malt.bootstrap import paired_bootstrap, paired_target_bootstrap, target_metrics
from malt.metrics import gauc, pcoc


def _rows(seed: int, n: int = 600, users: int = 40):
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, n)
    truth = rng.beta(1, 8, n)
    labels = (rng.random(n) < truth).astype(np.float64)
    return rng, user, truth, labels


def _brute_auc(scores: np.ndarray, target: np.ndarray) -> float:
    """Σ_{i≠j} p_i (1 − p_j) [s_i > s_j, ½ on ties] / Σ_{i≠j} p_i (1 − p_j)."""
    above = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
    pairs = target[:, None] * (1.0 - target[None, :])
    np.fill_diagonal(pairs, 0.0)
    return float((pairs * above).sum() / pairs.sum())


def test_on_labels_the_metrics_are_the_usual_ones():
    rng, user, _, labels = _rows(1)
    scores = rng.random(len(labels))
    got = target_metrics(scores, labels, user)
    assert got["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert got["gauc"] == pytest.approx(gauc(scores, labels, user).value, abs=1e-12)
    assert got["logloss"] == pytest.approx(log_loss(labels, scores), abs=1e-12)
    assert got["pcoc"] == pytest.approx(pcoc(scores, labels), abs=1e-12)


def test_on_labels_the_replicates_are_paired_bootstraps():
    rng, user, _, labels = _rows(2)
    a = [rng.random(len(labels)) for _ in range(2)]
    b = [np.clip(x + rng.normal(0, 0.2, len(x)), 0, 1) for x in a]
    ours = paired_target_bootstrap(a, b, labels, user, resamples=200, seed=3)
    theirs = paired_bootstrap(a, b, labels, user, resamples=200, seed=3)
    for metric, delta in theirs.items():
        assert (ours[metric].estimate, ours[metric].low, ours[metric].high) == pytest.approx(
            (delta.estimate, delta.low, delta.high), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.1, 0.3, 0.5, 0.9]),
                          st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0]), st.integers(0, 2)),
                min_size=3, max_size=25))
def test_against_a_probability_the_auc_counts_the_expected_pairs_of_distinct_rows(rows):
    scores, target, user = (np.array(c) for c in zip(*rows))
    pairs = np.outer(target, 1 - target)
    np.fill_diagonal(pairs, 0.0)
    assume(pairs.sum() > 0)
    got = target_metrics(scores, target, user)
    assert got["auc"] == pytest.approx(_brute_auc(scores, target), abs=1e-9)
    per_user, clicks = [], []
    for u in np.unique(user):
        mine = user == u
        pairs = np.outer(target[mine], 1 - target[mine])
        np.fill_diagonal(pairs, 0.0)
        if pairs.sum() > 0:
            per_user.append(_brute_auc(scores[mine], target[mine]))
            clicks.append(mine.sum())
    if per_user:
        assert got["gauc"] == pytest.approx(np.average(per_user, weights=clicks), abs=1e-9)


def test_against_a_probability_logloss_is_the_cross_entropy_and_pcoc_the_expected_ratio():
    rng, user, truth, _ = _rows(4)
    scores = np.clip(truth + rng.normal(0, 0.05, len(truth)), 0.01, 0.99)
    got = target_metrics(scores, truth, user)
    doubled = np.r_[np.ones_like(truth), np.zeros_like(truth)]
    assert got["logloss"] == pytest.approx(
        log_loss(doubled, np.r_[scores, scores], sample_weight=np.r_[truth, 1 - truth]),
        rel=1e-9)
    assert got["pcoc"] == pytest.approx(scores.sum() / truth.sum(), rel=1e-12)


def test_the_truth_itself_beats_a_noisy_copy_beyond_the_interval():
    rng, user, truth, _ = _rows(5, n=3000, users=300)
    noisy = np.clip(truth + rng.normal(0, 0.1, len(truth)), 0, 1)
    deltas = paired_target_bootstrap([truth], [noisy], truth, user, resamples=300)
    assert deltas["auc"].low > 0 and deltas["gauc"].low > 0
    assert deltas["logloss"].high < 0
    for delta in deltas.values():
        assert delta.low <= delta.estimate <= delta.high
    assert deltas["pcoc"].a_better is None  # no side of a PCOC difference is better


def test_bad_inputs_are_refused():
    _, user, truth, _ = _rows(6, n=20)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        paired_target_bootstrap([truth], [truth], truth + 1, user, resamples=5)
    with pytest.raises(ValueError, match="unknown metrics"):
        paired_target_bootstrap([truth], [truth], truth, user, metrics=("ece",), resamples=5)
    with pytest.raises(ValueError, match="pair one"):
        paired_target_bootstrap([truth], [], truth, user, resamples=5)


def test_pcoc_without_an_expected_conversion_is_undefined():
    scores = np.array([0.2, 0.4, 0.1])
    assert np.isnan(target_metrics(scores, np.zeros(3), np.array([0, 0, 1]))["pcoc"])
