"""Purchase delays of the simulator and the known-at columns it writes: the documented shape,
the same bits for the same seed, the clicks of `session` delays under `long-tail` ones."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from malt.cli import main
from malt.data import MAC, prepare
from malt.data.batches import DayBatches
from malt.errors import ConfigError
from malt.sources.simulate import simulate, size_config
from malt.sources.simulate.catalog import build_catalog
from malt.sources.simulate.config import DAY, Params
from malt.sources.simulate.journeys import purchase_delays, simulate_chunk
from malt.sources.simulate.labels import LABELS, attribute
from malt.sources.simulate.population import build_population

HOUR = 3600


def sampled_delays(mode: str, n: int = 200_000, seed: int = 0) -> np.ndarray:
    params = Params(purchase_delay=mode)
    rng = np.random.default_rng(seed)
    session = np.ceil(rng.exponential(params.conversion_delay_s, n)).astype(np.int64)
    return purchase_delays(session, params, np.random.default_rng(seed + 1))


def test_long_tail_delays_have_the_documented_shape():
    delay = sampled_delays("long-tail")
    share = {span: float(np.mean(delay <= span)) for span in (HOUR, DAY, 7 * DAY, 30 * DAY)}
    # Two exponentials: 44% in-session (mean 40 minutes), 56% deferred (mean 7 days).
    assert share[HOUR] == pytest.approx(0.44 * (1 - np.exp(-1.5)) + 0.56 * (1 - np.exp(-1 / 168)),
                                        abs=0.005)
    assert share[DAY] == pytest.approx(0.44 + 0.56 * (1 - np.exp(-1 / 7)), abs=0.005)
    assert share[7 * DAY] == pytest.approx(0.44 + 0.56 * (1 - np.exp(-1)), abs=0.005)
    # Chapelle (2014), conversions within a 30-day window: ~35% within an hour, ~50% a day.
    assert share[HOUR] / share[30 * DAY] == pytest.approx(0.35, abs=0.01)
    assert share[DAY] / share[30 * DAY] == pytest.approx(0.52, abs=0.01)
    np.testing.assert_array_equal(delay, sampled_delays("long-tail"))   # same seed, same bits
    assert not np.array_equal(delay, sampled_delays("long-tail", seed=2))


def test_session_delays_are_the_in_session_draws():
    rng = np.random.default_rng(0)
    session = np.ceil(rng.exponential(2400.0, 1000)).astype(np.int64)
    assert purchase_delays(session, Params(), None) is session
    assert np.mean(sampled_delays("session") <= HOUR) == pytest.approx(1 - np.exp(-1.5),
                                                                        abs=0.005)
    with pytest.raises(ValueError, match="own random stream"):
        purchase_delays(session, Params(purchase_delay="long-tail"), None)


def chunk(mode: str):
    params = Params(purchase_delay=mode)
    catalog = build_catalog(4000, params, np.random.default_rng(0))
    population = build_population(400, params, np.random.default_rng(1))
    events = simulate_chunk(catalog, population, np.arange(400), 6, params,
                            np.random.default_rng(2), np.random.default_rng(3), truth_replicas=1,
                            delay_rng=np.random.default_rng(4))
    labels = attribute(events, catalog.items, int(params.window_days * DAY), params.dda_noise,
                       np.random.default_rng(5))
    return events, labels


@pytest.mark.parametrize("mode", ["session", "long-tail"])
def test_known_at_is_the_first_crediting_purchase_inside_the_window(mode):
    events, labels = chunk(mode)
    for j, label in enumerate(LABELS):
        positive = labels.weights[:, j] > 0
        assert np.isnan(labels.known_at[:, j]).tolist() == (~positive).tolist(), label
        delay = labels.known_at[positive, j] - events.time[positive]
        assert delay.min() > 0 and delay.max() <= 7 * DAY, label
        # Some purchase at exactly that time credits the click: the purchases of its item.
        key = events.user * 10**7 + events.item
        purchases = set(zip((events.conv_user * 10**7 + events.conv_item).tolist(),
                            events.conv_time.tolist()))
        assert all((k, int(t)) in purchases
                   for k, t in zip(key[positive], labels.known_at[positive, j])), label


def test_long_tail_delays_keep_the_clicks_and_make_credit_arrive_later():
    session, session_labels = chunk("session")
    late, late_labels = chunk("long-tail")
    for name in ("user", "item", "time", "scenario", "slot", "contribution"):
        np.testing.assert_array_equal(getattr(late, name), getattr(session, name), name)

    def known_after_a_day(events, labels, j):
        positive = labels.weights[:, j] > 0
        return np.mean(labels.known_at[positive, j] - events.time[positive] > DAY)
    last = LABELS.index("last")
    assert known_after_a_day(session, session_labels, last) < 0.05
    assert known_after_a_day(late, late_labels, last) > 0.2
    # Each view matures at its own pace: first-click credit comes later than last-click.
    first = LABELS.index("first")
    assert known_after_a_day(late, late_labels, first) > known_after_a_day(late, late_labels,
                                                                            last)


def test_simulated_known_at_columns_feed_the_as_of_cut(tmp_path):
    config = size_config("tiny", seed=4, users=300, purchase_delay="long-tail")
    simulate(config, tmp_path / "a")
    simulate(config, tmp_path / "b")
    for path in sorted((tmp_path / "a").glob("*/*.parquet")):
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.read_bytes() == twin.read_bytes()      # same seed, same bits
    table = pq.read_table(tmp_path / "a" / "train" / "train-02.parquet")
    assert set(MAC.known_at_columns) <= set(table.column_names)
    day = prepare(tmp_path / "a", MAC).train[2]
    end_of_day = 3 * DAY
    cut = np.concatenate([b["weights"].numpy() for b in DayBatches(day, 512, as_of=end_of_day)])
    matured = np.concatenate([b["weights"].numpy() for b in DayBatches(day, 512)])
    known = day.arrays()["known_at"]
    np.testing.assert_array_equal(cut > 0, (matured > 0) & (known <= end_of_day))
    assert 0 < (cut > 0).sum() < (matured > 0).sum()    # some credit is still to come
    # The click time is on the known-at clock: day 2's clicks, each before its credit.
    click = table["click_time"].to_numpy()
    assert np.all((click >= 2 * DAY) & (click < 3 * DAY))
    np.testing.assert_array_equal(day.arrays()["click_time"], click)
    assert np.all(np.isnan(known) | (known >= click[:, None]))
    batch = next(iter(DayBatches(day, 512, as_of=end_of_day)))
    np.testing.assert_allclose(batch["elapsed"].numpy(), end_of_day - click[:512], rtol=1e-6)


def test_delays_flag(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--size", "tiny", "--users", "200", "--delays", "long-tail",
                 "--out", str(out)]) == 0
    assert (out / "test" / "test.parquet").is_file()
    assert main(["simulate", "--scenario", "app-promotion", "--size", "tiny", "--delays",
                 "long-tail", "--out", str(tmp_path / "app")]) == 3
    assert "--delays applies to the mac scenario only" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        Params(purchase_delay="weekly")
