"""The simulator's truth: drawn apart from the data, calibrated, and the noise-free DDA."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from malt.data import MAC
from malt.sources.simulate import simulate, size_config
from malt.sources.simulate.catalog import build_catalog
from malt.sources.simulate.config import DAY, Params
from malt.sources.simulate.journeys import (
    JourneySetup,
    conversion_probability,
    run_journeys,
    simulate_chunk,
)
from malt.sources.simulate.labels import LABELS, attribute
from malt.sources.simulate.population import build_population


def _world(users: int, seed: int = 0):
    params = Params()
    rng = np.random.default_rng(seed)
    return params, build_catalog(users * 12, params, rng), build_population(users, params, rng)


def test_the_truth_never_changes_a_click():
    params, catalog, population = _world(300)
    runs = [simulate_chunk(catalog, population, np.arange(300), 6, params,
                           np.random.default_rng(5), np.random.default_rng(truth), 3)
            for truth in (1, 2)]
    for name, value in vars(runs[0]).items():
        if name != "conversion_probability":
            np.testing.assert_array_equal(value, getattr(runs[1], name), err_msg=name)
    assert not np.array_equal(runs[0].conversion_probability, runs[1].conversion_probability)


def _setup(n: int, rng: np.random.Generator) -> JourneySetup:
    return JourneySetup(start=rng.integers(0, 5 * DAY, n),
                        mean_length=np.exp(rng.normal(1.1, 0.5, n)).astype(np.float32),
                        user_threshold=np.exp(0.45 * rng.normal(size=n)),
                        threshold_price=(0.3 * rng.normal(size=n)).astype(np.float32),
                        intent=rng.normal(-2.0, 1.0, n), device=rng.integers(0, 4, n, np.int8))


def test_journeys_convert_as_often_as_their_probability_says():
    params = Params()
    setup = _setup(40_000, np.random.default_rng(0))
    truth = conversion_probability(setup, params, np.random.default_rng(1), 64)
    played = run_journeys(setup, params, np.random.default_rng(2)).converts
    # Browsing journeys (half of them) never buy: the truth is at most buy_share.
    assert truth.min() >= 0 and truth.max() <= params.buy_share and truth.std() > 0.05
    # Groups by an independent estimate, so that each group's mean truth is unbiased (grouping
    # by the estimate itself would favour its errors).
    sorter = conversion_probability(setup, params, np.random.default_rng(3), 64)
    edges = np.quantile(sorter, [0, 0.5, 0.75, 0.9, 1.0])
    group = np.clip(np.searchsorted(edges, sorter, "right") - 1, 0, len(edges) - 2)
    for g in range(len(edges) - 1):
        rows = group == g
        rate, expected = played[rows].mean(), truth[rows].mean()
        assert abs(rate - expected) < 4 * np.sqrt(expected * (1 - expected) / rows.sum())


def test_a_journey_that_cannot_buy_has_probability_zero():
    params = replace(Params(), buy_share=0.0)
    truth = conversion_probability(_setup(500, np.random.default_rng(0)), params,
                                   np.random.default_rng(1), 8)
    assert np.all(truth == 0)


def test_true_credit_is_the_noise_free_dda_share():
    params, catalog, population = _world(400, seed=3)
    events = simulate_chunk(catalog, population, np.arange(400), 6, params,
                            np.random.default_rng(3), np.random.default_rng(4), 2)
    window = int(params.window_days * DAY)
    clean = attribute(events, catalog.items, window, 0.0, np.random.default_rng(0))
    noisy = attribute(events, catalog.items, window, params.dda_noise, np.random.default_rng(0))
    np.testing.assert_array_equal(clean.true_credit, noisy.true_credit)
    mta = clean.weights[:, LABELS.index("mta")]
    caused = clean.true_credit > 0
    assert caused.sum() > 50
    np.testing.assert_allclose(clean.true_credit[caused], mta[caused], rtol=1e-9)
    # Clicks with no causal part (one-off clicks, accidental clicks) are owed nothing, whatever
    # the rules credit them.
    assert np.all(clean.true_credit[events.contribution == 0] == 0)
    assert np.all(clean.true_credit[events.journey < 0] == 0)
    assert not np.allclose(noisy.true_credit[caused],
                           noisy.weights[caused, LABELS.index("mta")])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "tiny"
    simulate(size_config("tiny", seed=5), out)
    return out


def test_written_truth_columns(tiny):
    table = pq.read_table(tiny / "test" / "test.parquet").to_pandas()
    cvr, credit = table[MAC.true_probability_column], table[MAC.true_credit_column]
    assert cvr.between(0, 1).all() and credit.ge(0).all()
    assert (table.loc[credit > 0, "linear"] > 0).all()
    positive = table["linear"] > 0
    assert cvr[positive].mean() > 2 * cvr[~positive].mean()
