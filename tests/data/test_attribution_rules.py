"""Attribution rules: worked examples, the data-driven rule, and the engine's invariants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.data.attribution import ALL_RULES, AttributionConfig, ClickLog, attribute, credit
from malt.data.attribution.dda import (
    NoisyOrModel,
    ObjectiveTerms,
    Paths,
    dda_credit,
    fit,
    objective,
    objective_terms,
    shapley_shares,
)
from malt.errors import ConfigError

# --- rule-based rules: worked examples --------------------------------------------------------


def one_journey(rule, times, ids=None, **kw):
    times = np.asarray(times, dtype=float)
    ids = np.arange(len(times)) if ids is None else np.asarray(ids)
    return credit(rule, np.zeros(len(times), np.int64), times, ids, times.max() + 1 - times, **kw)


@pytest.mark.parametrize("rule, times, expected", [
    ("last", [3, 1, 2], [1, 0, 0]),
    ("first", [3, 1, 2], [0, 1, 0]),
    ("linear", [3, 1, 2, 0], [0.25] * 4),
    ("position", [5], [1.0]),
    ("position", [2, 1], [0.5, 0.5]),
    ("position", [1, 2, 3], [0.4, 0.2, 0.4]),
    ("position", [4, 1, 2, 3], [0.4, 0.4, 0.1, 0.1]),
])
def test_rule_examples(rule, times, expected):
    np.testing.assert_allclose(one_journey(rule, times), expected)


def test_ties_break_by_click_id():
    np.testing.assert_allclose(one_journey("last", [5, 5, 1], ids=[8, 2, 0]), [1, 0, 0])
    np.testing.assert_allclose(one_journey("first", [5, 5, 9], ids=[8, 2, 0]), [0, 1, 0])


def test_time_decay_halves_per_half_life_and_survives_very_old_journeys():
    w = credit("time_decay", np.zeros(2, np.int64), np.array([0.0, 10.0]), np.arange(2),
               np.array([20.0, 10.0]), half_life=10.0)
    np.testing.assert_allclose(w, [1 / 3, 2 / 3])
    w = credit("time_decay", np.zeros(2, np.int64), np.array([0.0, 1.0]), np.arange(2),
               np.array([1e6 + 1, 1e6]), half_life=1.0)
    np.testing.assert_allclose(w, [1 / 3, 2 / 3])


def test_position_shares_are_scaled_to_one():
    np.testing.assert_allclose(one_journey("position", [1, 2, 3], position_shares=(2, 1, 1)),
                               [0.5, 0.25, 0.25])


@pytest.mark.parametrize("kw", [{"half_life": 0.0}, {"position_shares": (0.0, 1.0, 0.0)},
                                {"position_shares": (-0.1, 0.6, 0.5)}])
def test_bad_parameters_are_rejected(kw):
    with pytest.raises(ValueError):
        one_journey("position", [1, 2], **kw)
    with pytest.raises(ValueError, match="unknown"):
        one_journey("dda", [1, 2])


# --- the data-driven rule ----------------------------------------------------------------------


def brute_force_shapley(p):
    """Shapley values of v(S) = 1 - prod_{i in S}(1 - p_i) by enumerating every coalition."""
    n = len(p)
    def v(s):
        return 1 - math.prod(1 - p[j] for j in s)
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            share = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for s in itertools.combinations(others, k):
                phi[i] += share * (v((*s, i)) - v(s))
    return phi


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-6, 6), min_size=1, max_size=7), min_size=1, max_size=4))
def test_shapley_shares_equal_enumerated_shapley_values(journeys):
    path = np.repeat(np.arange(len(journeys)), [len(j) for j in journeys])
    logits = np.concatenate([np.array(j) for j in journeys])
    shares = shapley_shares(path, logits)
    for j, lg in enumerate(journeys):
        phi = brute_force_shapley(1 / (1 + np.exp(-np.array(lg))))
        np.testing.assert_allclose(phi.sum(), 1 - np.prod(1 / (1 + np.exp(np.array(lg)))))
        np.testing.assert_allclose(shares[path == j], phi / phi.sum(), atol=1e-12)


def test_shapley_shares_are_linear_for_equal_clicks_and_finite_for_extreme_logits():
    np.testing.assert_allclose(shapley_shares(np.zeros(4, np.int64), np.full(4, 0.3)), 0.25)
    w = shapley_shares(np.zeros(3, np.int64), np.array([-800.0, -750.0, 40.0]))
    assert np.isfinite(w).all() and w[2] > 0.999 and abs(w.sum() - 1) < 1e-12


def test_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 6, (15, 3))
    conv_path = np.sort(rng.integers(0, 8, 30))
    _, conv_path = np.unique(conv_path, return_inverse=True)
    terms = ObjectiveTerms(rows=rows, conv_row=rng.integers(0, 15, 30), conv_path=conv_path,
                           n_conv=int(conv_path.max()) + 1,
                           other_count=rng.integers(0, 4, 15).astype(float), n_paths=20,
                           prior=np.r_[0.0, np.full(5, 0.7)])
    theta = rng.normal(0, 1, 6)
    _, grad = objective(theta, terms)
    eps = 1e-6
    numeric = [(objective(theta + eps * e, terms)[0] - objective(theta - eps * e, terms)[0])
               / (2 * eps) for e in np.eye(6)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_objective_equals_the_path_likelihood():
    """The aggregated loss is the mean negative log-likelihood of the paths (no prior)."""
    converted, other, _, _ = simulated_paths(1, n=50)
    dim = len(objective_terms(converted, other, (3,)).prior)
    theta = np.r_[0.0, np.random.default_rng(2).normal(0, 1, dim - 1)]
    model = NoisyOrModel(theta=theta, cardinalities=(3,))
    nll = 0.0
    for paths, did_convert in ((converted, True), (other, False)):
        p = 1 / (1 + np.exp(-model.logits(paths)))
        for path in np.unique(paths.path):
            none = np.prod(1 - p[paths.path == path])
            nll -= np.log(1 - none) if did_convert else np.log(none)
    n_paths = len(np.unique(converted.path)) + len(np.unique(other.path))
    loss, _ = objective(model.theta, objective_terms(converted, other, (3,), l2=0.0))
    np.testing.assert_allclose(loss, nll / n_paths, rtol=1e-10)


def simulated_paths(seed, n=4000):
    """Paths whose clicks that follow the previous one within a minute trigger the conversion
    with p 0.4, other clicks with p 0.05 (scaled by a channel factor 1, 1.5 or 0.5)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n)
    path = np.repeat(np.arange(n), sizes)
    rank = np.arange(len(path)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    quick = (rng.random(len(path)) < 0.5) & (rank > 0)
    time = np.cumsum(np.where(rank == 0, 0.0, np.where(quick, 30.0, 7200.0)))
    channel = rng.integers(0, 3, len(path))
    fired = rng.random(len(path)) < np.where(quick, 0.4, 0.05) * np.array([1.0, 1.5, 0.5])[channel]
    converted = (np.bincount(path, fired, minlength=n) > 0)[path]

    def paths(mask):
        return Paths(path=path[mask], time=time[mask], click_id=np.arange(mask.sum()),
                     features=channel[mask][:, None])
    return paths(converted), paths(~converted), quick[converted], channel[converted]


def test_dda_learns_which_clicks_convert_and_is_deterministic():
    converted, other, quick, channel = simulated_paths(0, n=20_000)
    weights, model = dda_credit(converted, other, (3,))
    again, _ = dda_credit(converted, other, (3,))
    np.testing.assert_array_equal(weights, again)
    minute, hour, day, longer = model.cell_effects.T
    # logit(0.4) - logit(0.05) = 2.5 for a click a minute after the previous one, at every
    # position; a click two hours after the previous one has the first click's p.
    assert np.all((1.5 < minute - day) & (minute - day < 3.5))
    assert np.all(np.abs(day) < 0.6)
    effects = model.feature_effects(0)
    assert effects[0] == 0 and effects[1] > 0 > effects[2]
    assert weights[quick].mean() > 3 * weights[~quick].mean()


def positional_paths(seed, n=20_000, trigger=(0.3, 0.08, 0.04, 0.03, 0.02)):
    """Paths of 1-5 clicks whose k-th click triggers the conversion with p `trigger[k]`,
    whatever the gaps (exponential, mean one hour)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n)
    path = np.repeat(np.arange(n), sizes)
    rank = np.arange(len(path)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    time = np.cumsum(np.where(rank == 0, 1e6, rng.exponential(3600.0, len(path))))
    p = np.array(trigger)[rank]
    converted = (np.bincount(path, rng.random(len(path)) < p, minlength=n) > 0)[path]

    def paths(mask):
        return Paths(path=path[mask], time=time[mask], click_id=np.arange(mask.sum()),
                     features=np.zeros((mask.sum(), 0), np.int64))
    true_logit = np.log(p / (1 - p))[converted]
    return paths(converted), paths(~converted), rank[converted], true_logit


def _shares_by_position(paths: Paths, rank: np.ndarray, weights: np.ndarray, clicks: int):
    """Mean credit of each position over the converted journeys of `clicks` clicks."""
    in_size = (paths.lengths() == clicks)[np.unique(paths.path, return_inverse=True)[1]]
    return np.array([weights[in_size & (rank == k)].mean() for k in range(clicks)])


@pytest.mark.parametrize("clicks", [2, 3])
def test_dda_recovers_the_credit_of_each_position_from_the_data(clicks):
    converted, other, rank, true_logit = positional_paths(0)
    truth = _shares_by_position(converted, rank, shapley_shares(converted.path, true_logit),
                                clicks)
    for l2 in (1e-3, 1.0):  # from almost no prior to the default one
        weights, _ = dda_credit(converted, other, l2=l2)
        learned = _shares_by_position(converted, rank, weights, clicks)
        np.testing.assert_allclose(learned, truth, atol=0.05, err_msg=f"l2 {l2}")
    assert truth[0] > 0.6  # the first click earns most: a test the linear rule would fail


def _only_paths_of(paths: Paths, clicks: int) -> Paths:
    keep = (paths.lengths() == clicks)[np.unique(paths.path, return_inverse=True)[1]]
    return Paths(paths.path[keep], paths.time[keep], paths.click_id[keep], paths.features[keep])


def test_paths_of_one_length_are_reported_as_not_telling_positions_apart(caplog):
    converted, other, _, _ = positional_paths(1, n=2000)
    fit(_only_paths_of(converted, 3), _only_paths_of(other, 3))
    assert "cannot tell positions apart" in caplog.text
    caplog.clear()
    fit(converted, other)
    assert "cannot tell positions apart" not in caplog.text


def test_dda_fit_without_paths_or_with_mismatched_features():
    empty = Paths(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 0), int))
    assert np.all(fit(empty, empty).theta == 0)
    with pytest.raises(ValueError, match="cardinality"):
        fit(empty, empty, (3,))


# --- the engine: invariants on random logs ---------------------------------------------------


@st.composite
def logs(draw):
    n = draw(st.integers(1, 30))
    m = draw(st.integers(0, 10))
    def ints(lo, hi, size):
        return draw(st.lists(st.integers(lo, hi), min_size=size, max_size=size))
    item = np.array(ints(0, 3, n))
    clicks = pd.DataFrame({"user": ints(0, 2, n), "item": item, "shop": item % 2,
                           "click_time": np.array(ints(0, 50, n), float),
                           "click_id": draw(st.permutations(range(n))),
                           "channel": ints(0, 2, n)})
    conversions = pd.DataFrame({"user": ints(0, 2, m), "item": ints(0, 3, m),
                                "conversion_time": np.array(ints(0, 70, m), float)})
    mode = draw(st.sampled_from(["direct", "indirect-shop", "indirect-any", "given"]))
    if mode == "given":   # the log names each click's conversion, as the Criteo layout does
        clicks["journey"] = ints(-1, m - 1, n)
        conversions["journey"] = np.arange(m)
    log = ClickLog(clicks=clicks, conversions=conversions, journey=mode == "given",
                   click_order=clicks["click_id"].to_numpy(np.int64), features=("channel",))
    return log, float(draw(st.integers(1, 30))), "direct" if mode == "given" else mode


@settings(max_examples=40, deadline=None)
@given(logs())
def test_every_rule_keeps_the_invariants(case):
    log, window, mode = case
    config = AttributionConfig(window=window, mode=mode, half_life=5.0, dda_features=("channel",))
    result = attribute(log, config)
    j = result.journeys
    clicks, conversions = log.clicks, log.conversions
    age = conversions["conversion_time"].to_numpy()[j.conversion] \
        - clicks["click_time"].to_numpy()[j.click]
    assert np.all((age >= 0) & (age <= window))
    def same(column):
        return clicks[column].to_numpy()[j.click] \
            == conversions[column].to_numpy()[j.conversion]
    if log.journey:
        assert np.all(same("journey"))
    else:
        assert np.all(same("user"))
    if mode == "direct" and not log.journey:
        assert np.all(same("item"))
    in_journey = np.bincount(j.click, minlength=len(clicks)) > 0
    for rule in ALL_RULES:
        w = result.pair_weights[rule]
        assert np.all((w >= 0) & (w <= 1 + 1e-12)), rule
        sums = np.bincount(j.conversion, weights=w, minlength=len(conversions))
        np.testing.assert_allclose(sums, (j.sizes > 0).astype(float), atol=1e-9, err_msg=rule)
        labels = result.labels[rule]
        assert np.all(labels[~in_journey] == 0), rule
        np.testing.assert_allclose(labels.sum(), (j.sizes > 0).sum(), atol=1e-9)
    again = attribute(log, config)
    for rule in ALL_RULES:
        np.testing.assert_array_equal(result.labels[rule], again.labels[rule])


def test_indirect_shop_takes_the_shop_from_the_clicks():
    clicks = pd.DataFrame({"user": [1, 1, 1], "item": [10, 11, 12], "shop": [0, 0, 1],
                           "click_time": [0.0, 1.0, 2.0], "click_id": [0, 1, 2]})
    conversions = pd.DataFrame({"user": [1], "item": [11], "conversion_time": [3.0]})
    log = ClickLog(clicks=clicks, conversions=conversions, click_order=np.arange(3))
    config = AttributionConfig(rules=("linear",), mode="indirect-shop")
    np.testing.assert_allclose(attribute(log, config).labels["linear"], [0.5, 0.5, 0.0])
    config = AttributionConfig(rules=("linear",), mode="direct")
    np.testing.assert_allclose(attribute(log, config).labels["linear"], [0.0, 1.0, 0.0])
    config = AttributionConfig(rules=("linear",), mode="indirect-any")
    np.testing.assert_allclose(attribute(log, config).labels["linear"], [1 / 3] * 3)


@pytest.mark.parametrize("kw", [{"rules": ("last", "shapley")}, {"rules": ()},
                                {"rules": ("last", "last")}, {"mode": "nearby"},
                                {"window": 0.0}, {"half_life": -1.0},
                                {"position_shares": (0.0, 1.0, 0.0)}])
def test_config_rejects_bad_settings(kw):
    with pytest.raises(ConfigError):
        AttributionConfig(**kw)
