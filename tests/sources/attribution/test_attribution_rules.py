"""Attribution rules: worked examples, the data-driven rule, and the engine's invariants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.errors import ConfigError
from malt.sources.attribution import ALL_RULES, AttributionConfig, ClickLog, attribute, credit
from malt.sources.attribution.dda import (
    GAP_EDGES,
    POSITIONS,
    NoisyOrModel,
    ObjectiveTerms,
    PathCounts,
    Paths,
    dda_credit,
    fit,
    objective,
    objective_terms,
    path_counts,
    shapley_shares,
    terms_from_counts,
)
from malt.sources.attribution.rules import RULES, sort_journeys, sort_order

# Fixed 0, the first click's logit b, then one cell per (later position, gap bucket).
FEATURES_AT = 2 + (POSITIONS - 1) * (len(GAP_EDGES) + 1)

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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), max_size=12))
def test_sort_order_is_the_lexicographic_order(rows):
    key, time, click_id = (np.array([r[k] for r in rows], np.int64) for k in range(3))
    order = sort_order(key, time.astype(float), click_id)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(order, np.lexsort((click_id, time, key)))


@pytest.mark.parametrize("time, click_id", [
    ([0, 5, 3], [0, 1, 2]),   # every later time is after the first, but 3 comes before 5
    ([0, 5, 0], [0, 1, 2]),   # the last time equals the first, but follows a later one
    ([0, 0, 0], [5, 7, 6]),   # equal times: every later id is above the first, not in order
])
def test_a_journey_out_of_order_after_its_first_click_is_sorted(time, click_id):
    key, time, click_id = np.zeros(3, np.int64), np.array(time, float), np.array(click_id)
    np.testing.assert_array_equal(sort_order(key, time, click_id),
                                  np.lexsort((click_id, time, key)))


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


@pytest.mark.parametrize("kw, message", [
    ({"half_life": 0.0}, "half_life must be positive, got 0.0"),
    ({"position_shares": (0.0, 1.0, 0.0)}, "position_shares must be non-negative"),
    ({"position_shares": (-0.1, 0.6, 0.5)}, "position_shares must be non-negative"),
])
def test_bad_parameters_are_rejected(kw, message):
    with pytest.raises(ValueError, match=message):
        one_journey("position", [1, 2], **kw)
    with pytest.raises(ValueError, match="unknown attribution rule 'dda'"):
        one_journey("dda", [1, 2])
    with pytest.raises(ValueError, match="^the time_decay rule needs the click ages$"):
        credit("time_decay", np.zeros(2, np.int64), np.array([1.0, 2.0]), np.arange(2))


def test_a_zero_middle_share_and_no_pairs_are_allowed():
    np.testing.assert_allclose(one_journey("position", [1, 2, 3], position_shares=(1, 0, 1)),
                               [0.5, 0.0, 0.5])
    empty = np.zeros(0, np.int64)
    assert credit("last", empty, np.zeros(0), empty).shape == (0,)


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
    # Every click very unlikely: the shares stay those of the linear rule, not 0 / 0.
    w = shapley_shares(np.zeros(3, np.int64), np.full(3, -600.0))
    np.testing.assert_allclose(w, 1 / 3)
    assert shapley_shares(np.zeros(0, np.int64), np.zeros(0)).shape == (0,)


def test_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 6, (15, 3))
    conv_path = np.sort(rng.integers(0, 8, 30))
    _, conv_path = np.unique(conv_path, return_inverse=True)
    terms = ObjectiveTerms(rows=rows, conv_row=rng.integers(0, 15, 30), conv_path=conv_path,
                           n_conv=int(conv_path.max()) + 1,
                           conv_count=rng.integers(1, 4, int(conv_path.max()) + 1).astype(float),
                           other_count=rng.integers(0, 4, 15).astype(float), n_paths=20,
                           prior=np.r_[0.0, np.full(5, 0.7)], lengths=np.arange(1, 4))
    theta = rng.normal(0, 1, 6)
    _, grad = objective(theta, terms)
    eps = 1e-6
    numeric = [(objective(theta + eps * e, terms)[0] - objective(theta - eps * e, terms)[0])
               / (2 * eps) for e in np.eye(6)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def _path_nll(model: NoisyOrModel, converted: Paths, other: Paths) -> float:
    """Summed negative log-likelihood of the paths, one path at a time."""
    nll = 0.0
    for paths, did_convert in ((converted, True), (other, False)):
        p = 1 / (1 + np.exp(-model.logits(paths)))
        for path in np.unique(paths.path):
            none = np.prod(1 - p[paths.path == path])
            nll -= np.log(1 - none) if did_convert else np.log(none)
    return nll


def _two_feature_paths(n: int, seed: int = 0) -> Paths:
    rng = np.random.default_rng(seed)
    path = np.sort(rng.integers(0, n, 3 * n))
    features = np.c_[rng.integers(0, 3, 3 * n), rng.integers(0, 4, 3 * n)]
    return Paths(path=path, time=rng.integers(0, 7200, 3 * n).astype(float),
                 click_id=np.arange(3 * n), features=features)


def _slice(paths: Paths, keep: np.ndarray) -> Paths:
    return Paths(paths.path[keep], paths.time[keep], paths.click_id[keep], paths.features[keep])


def _likelihood_case(name: str) -> tuple[Paths, Paths, tuple[int, ...]]:
    if name == "one feature":
        converted, other, _, _ = simulated_paths(1, n=50)
        return converted, other, (3,)
    both = _two_feature_paths(40)
    converted = _slice(both, both.path < 25)
    # The non-converting paths never show the last codes: their counts must still line up.
    other = _slice(both, (both.path >= 25) & (both.features[:, 1] < 2))
    nothing = _slice(both, both.path < 0)
    return {"two features": (converted, other, (3, 4)),
            "no conversions": (nothing, other, (3, 4)),
            "one path": (_slice(both, both.path == 0), nothing, (3, 4))}[name]


@pytest.mark.parametrize("case", ["one feature", "two features", "no conversions", "one path"])
def test_objective_equals_the_path_likelihood(case):
    """The aggregated loss is the mean negative log-likelihood of the paths plus the prior."""
    converted, other, cardinalities = _likelihood_case(case)
    terms = objective_terms(converted, other, cardinalities, l2=0.3)
    dim = FEATURES_AT + sum(c - 1 for c in cardinalities)
    assert terms.prior.shape == (dim,) and terms.prior[1] == 0 and np.all(terms.prior[2:] == 0.3)
    theta = np.r_[0.0, np.random.default_rng(2).normal(0, 1, dim - 1)]
    model = NoisyOrModel(theta=theta, cardinalities=cardinalities)
    n_paths = len(np.unique(converted.path)) + len(np.unique(other.path))
    assert terms.n_paths == n_paths
    loss, _ = objective(model.theta, terms)
    prior = 0.5 * 0.3 * (theta[2:] ** 2).sum()
    np.testing.assert_allclose(loss, (_path_nll(model, converted, other) + prior) / n_paths,
                               rtol=1e-10)


def test_each_click_logit_is_the_first_click_logit_plus_its_terms():
    paths = _two_feature_paths(30)
    dim = FEATURES_AT + 2 + 3
    model = NoisyOrModel(theta=np.r_[0.0, np.random.default_rng(3).normal(0, 1, dim - 1)],
                         cardinalities=(3, 4))
    order, group, start = sort_journeys(paths.path, paths.time, paths.click_id)
    position = np.empty(len(paths), np.int64)
    position[order] = np.arange(len(paths)) - start[group]
    time = paths.time[order]
    gap = np.empty(len(paths), np.int64)
    gap[order] = np.searchsorted(GAP_EDGES, np.diff(time, prepend=0.0))
    cell = np.where(position == 0, 0.0, model.cell_effects[
        np.clip(position - 1, 0, POSITIONS - 2), gap])
    first, second = model.feature_effects(0), model.feature_effects(1)
    assert first.shape == (3,) and second.shape == (4,) and first[0] == second[0] == 0
    want = model.first_click_logit + cell + first[paths.features[:, 0]] \
        + second[paths.features[:, 1]]
    np.testing.assert_allclose(model.logits(paths), want, rtol=1e-12)
    # Every learned term is some click's: the tables tile theta after the fixed 0 and b.
    np.testing.assert_array_equal(np.r_[0.0, model.first_click_logit, model.cell_effects.ravel(),
                                        first[1:], second[1:]], model.theta)


def test_the_fit_stops_at_the_optimum():
    converted, other, _, _ = simulated_paths(0, n=4000)
    model = fit(converted, other, (3,), l2=1.0)
    _, grad = objective(model.theta, objective_terms(converted, other, (3,), l2=1.0))
    assert np.abs(grad[1:]).max() < 1e-6


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
    weights, model = dda_credit(converted, other, (3,), l2=1.0)
    again, _ = dda_credit(converted, other, (3,), l2=1.0)
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
    fit(_only_paths_of(converted, 3), _only_paths_of(other, 3), l2=1.0)
    assert caplog.messages == [
        "every click path has 3 click(s): the data cannot tell positions apart, so the dda "
        "credit of later clicks follows the prior (toward the linear rule)"]
    caplog.clear()
    fit(converted, other, l2=1.0)
    assert "cannot tell positions apart" not in caplog.text


def test_dda_fit_without_paths_or_with_mismatched_features():
    empty = Paths(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 0), int))
    assert np.all(fit(empty, empty, l2=1.0).theta == 0)
    with pytest.raises(ValueError, match="^one cardinality per feature column is needed$"):
        fit(empty, empty, (3,), l2=1.0)
    one = Paths(np.zeros(1, np.int64), np.zeros(1), np.zeros(1, np.int64), np.zeros((1, 1), int))
    for converted, other in ((one, empty), (empty, one)):
        with pytest.raises(ValueError, match="one cardinality per feature column"):
            objective_terms(converted, other, (), l2=1.0)


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


def test_terms_are_the_same_from_aggregated_counts_in_any_order():
    """What the Spark engine hands over (distinct patterns with counts, distinct rows with
    counts, in any order) gives the very terms of the in-memory paths."""
    both = _two_feature_paths(60, seed=4)
    doubled = Paths(np.r_[both.path, both.path + 60], np.r_[both.time, both.time],
                    np.r_[both.click_id, both.click_id + 180], np.r_[both.features, both.features])
    converted, other = _slice(doubled, doubled.path < 80), _slice(doubled, doubled.path >= 80)
    counts, _ = path_counts(converted, other, (3, 4))
    expected, pattern_of = terms_from_counts(counts, (3, 4), l2=0.5)
    assert expected.n_conv < len(counts.conv_count) and expected.conv_count.max() >= 2
    # Distinct patterns once each, with their counts, in reverse order; rows likewise.
    patterns = np.unique(pattern_of)[::-1]
    size = np.bincount(counts.conv_pattern)
    pick = [np.flatnonzero(pattern_of == p)[0] for p in patterns]
    clicks = np.concatenate([np.flatnonzero(counts.conv_pattern == p) for p in pick])
    rows, inverse = np.unique(counts.other_design, axis=0, return_inverse=True)
    aggregated = PathCounts(
        conv_design=counts.conv_design[clicks],
        conv_pattern=np.repeat(np.arange(len(pick)), size[pick]),
        conv_count=np.bincount(pattern_of)[patterns].astype(float),
        other_design=rows[::-1], other_count=np.bincount(inverse.ravel())[::-1].astype(float),
        n_other=counts.n_other, lengths=counts.lengths)
    terms, _ = terms_from_counts(aggregated, (3, 4), l2=0.5)
    for name in ("rows", "conv_row", "conv_path", "conv_count", "other_count", "prior",
                 "lengths"):
        np.testing.assert_array_equal(getattr(terms, name), getattr(expected, name), name)
    assert (terms.n_conv, terms.n_paths) == (expected.n_conv, expected.n_paths)


def test_the_rule_literal_is_the_rule_based_rules_and_dda():
    assert ALL_RULES == (*RULES, "dda")
