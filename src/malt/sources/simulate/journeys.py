"""Clicks and purchases of one chunk of users.

A user develops interest in an item (the pick rises with u.v) and clicks its ads one or more
times over the following days; the planned number of clicks depends on the item's category.
Every click adds to the purchase intent an amount that depends on the user-item affinity, the
item, the context and the click's position in the journey: that amount is the click's true
causal contribution (some clicks are accidental and add nothing). The user buys as soon as the
intent crosses a personal threshold, which rises with the price, or not at all. A purchase may be
repeated days later without a new click. The purchase follows the deciding click by minutes, or
with `long-tail` delays by minutes or days (`purchase_delays`). Besides journeys, users make
many one-off clicks that never convert. Before the simulated days each user has a purchase history.

Times are integer seconds from day 0, 00:00. Journeys start from one window before day 0 (so the
first days have the history a real log would have) to the last day, and run to their end, past
the last day if need be, so the labels of the final days are not truncated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from malt.sources.simulate.catalog import Catalog
from malt.sources.simulate.config import DAY, DEVICES, HOUR_BANDS, SEQUENCE_LENGTH, SLOTS, Params
from malt.sources.simulate.population import DEVICE, SPENDING, Population

_MAX_JOURNEY = 40
_SPAN = _MAX_JOURNEY + 1
_HISTORY_SPAN_DAYS = 120
TRUTH_REPLICAS = 48
"""Plays of each journey's chance that estimate its true conversion probability (standard
error at most 0.036 with the default `buy_share`)."""


@dataclass
class ChunkEvents:
    """Clicks [N], purchases [P] (conversions, repeats included) and the initial histories [H]
    of a chunk of users; `user` holds global user indices."""

    user: np.ndarray           # int64 [N]
    item: np.ndarray           # int64 [N]
    time: np.ndarray           # int64 [N]
    scenario: np.ndarray       # int8 [N]
    slot: np.ndarray           # int8 [N]
    device: np.ndarray         # int8 [N]
    contribution: np.ndarray   # float64 [N] true causal contribution (0 for one-off clicks)
    conversion_probability: np.ndarray
    """float64 [N] true chance that the click's journey ends in a purchase (0 for one-off
    clicks; see `conversion_probability`)."""
    journey: np.ndarray        # int64 [N] journey within the chunk, -1 for one-off clicks
    conv_user: np.ndarray      # int64 [P]
    conv_item: np.ndarray      # int64 [P]
    conv_time: np.ndarray      # int64 [P]
    history_user: np.ndarray   # int64 [H]
    history_item: np.ndarray   # int64 [H]
    history_time: np.ndarray   # int64 [H]


def _segments(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(segment of each element, first element of each segment, position inside the segment)."""
    start = np.cumsum(lengths) - lengths
    segment = np.repeat(np.arange(len(lengths)), lengths)
    return segment, start, np.arange(int(lengths.sum())) - start[segment]


def _categorical(logits: np.ndarray, row: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per click of softmax(logits[row]): logits [K, C] of the K distinct rows, row
    [N] -> int8 [N]. Distinct rows are few, and the softmax of each is computed once."""
    prob = np.exp(logits - logits.max(1, keepdims=True))
    cum = np.cumsum(prob, axis=1)
    r = rng.random(len(row))[:, None] * cum[row, -1:]
    return np.minimum((cum[row] < r).sum(1), logits.shape[1] - 1).astype(np.int8)


def _time_of_day(n: int, params: Params, rng: np.random.Generator) -> np.ndarray:
    profile = params.hour_profile / params.hour_profile.sum()
    return rng.choice(24, size=n, p=profile) * 3600 + rng.integers(0, 3600, n)


def _context(stage_logits: np.ndarray, row: np.ndarray, user_device: np.ndarray,
             params: Params, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scenario, position band and device of clicks [N] with scenario logits
    stage_logits[row] (stage_logits [K, S], row [N])."""
    scenario = _categorical(stage_logits, row, rng)
    slot = _categorical(-params.scenario_slot_decay[:, None] * np.arange(SLOTS), scenario, rng)
    device = np.where(rng.random(len(scenario)) < params.device_loyalty, user_device,
                      rng.integers(0, DEVICES, len(scenario))).astype(np.int8)
    return scenario, slot, device


def hour_band(time: np.ndarray) -> np.ndarray:
    """Four-hour band of the day of integer times [N] -> int8 [N]."""
    return ((time % DAY) // (DAY // HOUR_BANDS)).astype(np.int8)


def _initial_history(catalog: Catalog, population: Population, users: np.ndarray,
                     params: Params, rng: np.random.Generator, start: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Purchases before the simulation (user, item, time) and the item matrix [n, L] (-1 pad)."""
    activity = population.activity[users] / params.clicks_per_user_day
    count = np.minimum(rng.poisson(params.history_mean * np.sqrt(activity)), SEQUENCE_LENGTH)
    local, _, position = _segments(count)
    item = catalog.choose(population.interest[users[local]], params.candidates,
                          params.interest_temperature, rng)
    time = start - rng.integers(1, _HISTORY_SPAN_DAYS * DAY, len(item))
    matrix = np.full((len(users), SEQUENCE_LENGTH), -1, dtype=np.int64)
    matrix[local, position] = item
    return users[local], item, time, matrix


@dataclass
class JourneySetup:
    """What is fixed when a journey starts [E]; the rest of it is chance (`run_journeys`)."""

    start: np.ndarray            # int64 time of the first click
    mean_length: np.ndarray      # float32 planned clicks on average
    user_threshold: np.ndarray   # float64 the user's intent needed to buy
    threshold_price: np.ndarray  # float32 log threshold added by the item's price
    intent: np.ndarray           # float64 the log contribution's user-item part
    device: np.ndarray           # int8 the user's own device


@dataclass
class JourneyClicks:
    """The planned clicks [M] of journeys [E] as chance played them out."""

    event: np.ndarray          # int64 [M] journey of each click
    first: np.ndarray          # int64 [E] first click of each journey
    position: np.ndarray       # int64 [M] position inside the journey
    time: np.ndarray           # int64 [M]
    scenario: np.ndarray       # int8 [M]
    slot: np.ndarray           # int8 [M]
    device: np.ndarray         # int8 [M]
    contribution: np.ndarray   # float64 [M]
    clicks_before: np.ndarray  # int64 [E] clicks before the intent crosses the threshold
    converts: np.ndarray       # bool [E]


def run_journeys(setup: JourneySetup, params: Params, rng: np.random.Generator
                 ) -> JourneyClicks:
    """One draw of each journey's chance: its length, whether it is mere browsing, its
    threshold, and the time, context and contribution of each planned click."""
    p = params
    n_events = len(setup.start)
    length = np.minimum(rng.geometric(np.minimum(1.0, 1.0 / setup.mean_length)), _MAX_JOURNEY)
    # Many journeys are comparison browsing that never ends in a purchase.
    browsing = rng.random(n_events) >= p.buy_share
    threshold = np.where(browsing, np.inf, 1.0) * setup.user_threshold * np.exp(
        setup.threshold_price + p.threshold_event_sigma * rng.normal(size=n_events))

    event, first, position = _segments(length)
    # A click's stage (position / (length - 1)) takes one of few values: one row per (length,
    # position) pair holds it and the scenario logits at it.
    length_of, position_of = np.divmod(np.arange(_SPAN * _SPAN), _SPAN)
    stages = position_of / np.maximum(length_of - 1, 1)
    stage_row = length[event] * _SPAN + position
    stage = stages[stage_row]
    gap = np.where(rng.random(len(event)) < p.session_share,
                   rng.exponential(p.session_gap_s, len(event)),
                   rng.exponential(p.day_gap_days * DAY, len(event)))
    gap = np.where(position == 0, 0, np.ceil(gap)).astype(np.int64)
    elapsed = np.cumsum(gap)
    time = setup.start[event] + elapsed - elapsed[first][event]
    scenario, slot, device = _context(p.scenario_start + stages[:, None] * p.scenario_slope,
                                      stage_row, setup.device[event], p, rng)
    null = rng.random(len(event)) < p.scenario_null[scenario] * (1 + p.slot_null * slot)
    log_c = (setup.intent[event] + p.scenario_effect[scenario] + p.hour_effect[hour_band(time)]
             + p.stage_effect * stage - p.slot_effect * slot
             + p.contribution_sigma * rng.normal(size=len(event)))
    contribution = np.where(null, 0.0, np.exp(log_c))
    # Contributions are >= 0, so the intent only grows and "crossed" is monotone in a journey.
    total = np.cumsum(contribution)
    intent = total - (total[first] - contribution[first])[event]
    clicks_before = np.bincount(event, weights=intent < threshold[event],
                                minlength=n_events).astype(np.int64)
    return JourneyClicks(event=event, first=first, position=position, time=time,
                         scenario=scenario, slot=slot, device=device, contribution=contribution,
                         clicks_before=clicks_before, converts=clicks_before < length)


def conversion_probability(setup: JourneySetup, params: Params, rng: np.random.Generator,
                           replicas: int) -> np.ndarray:
    """Each journey's true chance of ending in a purchase [E], float64, from `replicas`
    independent plays of its chance (`run_journeys`). Whether a journey is mere browsing is
    drawn apart from the rest, so the plays are of buying journeys and their conversion share
    is scaled by `buy_share`: the same expectation with less noise (standard error at most
    0.5 · buy_share / sqrt(replicas))."""
    buying = replace(params, buy_share=1.0)
    converted = np.zeros(len(setup.start))
    for _ in range(replicas):
        converted += run_journeys(setup, buying, rng).converts
    return params.buy_share * converted / replicas


def purchase_delays(session: np.ndarray, params: Params, rng: np.random.Generator | None
                    ) -> np.ndarray:
    """Seconds from the deciding click to the purchase, int64 [P], given its in-session delay
    `session` [P] (drawn from the main stream, so that the clicks never depend on the model).

    `session` delays are kept as they are. `long-tail` delays defer a share `deferred_share`
    of purchases by an exponential of mean `deferred_delay_days` instead, drawn from `rng`, a
    stream of their own. Chapelle (2014, "Modeling delayed feedback in display advertising")
    models the delay of a conversion as exponential and reports, on Criteo's traffic with
    last-click attribution in a 30-day window, about 35% of conversions within an hour and 50%
    within a day; two exponentials (40 minutes for 44% of purchases, 7 days for 56%) give
    those two figures (34.8% and 51.9% of the purchases within 30 days), and 20% of purchases
    come more than 7 days after their deciding click, past the default window."""
    if params.purchase_delay == "session":
        return session
    if rng is None:
        raise ValueError("long-tail purchase delays need their own random stream")
    deferred = rng.random(len(session)) < params.deferred_share
    later = np.ceil(rng.exponential(params.deferred_delay_days * DAY, len(session)))
    return np.where(deferred, later.astype(np.int64), session)


def simulate_chunk(catalog: Catalog, population: Population, users: np.ndarray, days: int,
                   params: Params, rng: np.random.Generator, truth_rng: np.random.Generator,
                   truth_replicas: int = TRUTH_REPLICAS,
                   delay_rng: np.random.Generator | None = None) -> ChunkEvents:
    """Every click and purchase of the global users `users` [n] over `days` days.

    `rng` draws everything written; `truth_rng` only the replicas that estimate each journey's
    conversion probability, so the truth never changes the clicks and labels; `delay_rng`
    only the deferred purchases of `long-tail` delays, so the clicks are those of `session`
    delays."""
    p = params
    lead = int(np.ceil(p.window_days))
    h_user, h_item, h_time, history = _initial_history(catalog, population, users, p, rng,
                                                       -lead * DAY)
    activity = population.activity[users]
    profile = population.profile[users]

    # --- journeys: one interest in one item each
    rate = activity * p.journey_share / p.clicks_per_journey
    ev_local, _, _ = _segments(rng.poisson(rate * (lead + days)))
    n_events = len(ev_local)
    interest = population.interest[users[ev_local]]
    item = catalog.choose(interest, p.candidates, p.interest_temperature, rng)
    start = rng.integers(-lead, days, n_events) * DAY + _time_of_day(n_events, p, rng)
    affinity = catalog.affinity(interest, item)
    price = catalog.category_price[catalog.category[item]]

    # Shop loyalty and visual taste, both relative to the purchases before the simulation.
    history_shop = np.where(history >= 0, catalog.shop[np.maximum(history, 0)], -1)
    loyal = (history_shop[ev_local] == catalog.shop[item][:, None]).any(1)
    bought = history >= 0
    taste = (np.einsum("nlk,nl->nk", catalog.visual[np.maximum(history, 0)].astype(np.float32),
                       bought.astype(np.float32))
             / np.maximum(bought.sum(1), 1)[:, None])
    visual_match = np.einsum("ek,ek->e", catalog.visual[item].astype(np.float32),
                             taste[ev_local])
    mismatch = np.maximum(0.0, catalog.price_band[item] * 4 / (p.price_bands - 1)
                          - profile[ev_local, SPENDING] - 1)
    setup = JourneySetup(
        start=start, mean_length=np.exp(p.length_base + p.length_price * price),
        user_threshold=population.threshold[users[ev_local]],
        threshold_price=p.threshold_price * catalog.price[item],
        intent=(p.intent_base + p.affinity_effect * affinity
                + p.quality_effect * catalog.quality[item] + p.loyalty_effect * loyal
                + p.visual_effect * visual_match - p.price_mismatch_effect * mismatch),
        device=profile[ev_local, DEVICE])
    journeys = run_journeys(setup, p, rng)
    event, first, time = journeys.event, journeys.first, journeys.time
    clicks_before, converts = journeys.clicks_before, journeys.converts
    keep = journeys.position <= clicks_before[event]
    probability = conversion_probability(setup, p, truth_rng, truth_replicas)

    buyer = np.flatnonzero(converts)
    session = np.ceil(rng.exponential(p.conversion_delay_s, len(buyer))).astype(np.int64)
    buy_time = (time[first[buyer] + clicks_before[buyer]] + 1
                + purchase_delays(session, p, delay_rng))
    repeats = rng.poisson(np.clip(p.repeat_base + p.repeat_price * price[buyer], 0.02, 2.0))
    order, first_repeat, _ = _segments(repeats)
    delay = np.ceil(rng.exponential(p.repeat_delay_days * DAY, len(order))).astype(np.int64)
    waited = np.cumsum(delay)
    again = buyer[order]
    again_time = buy_time[order] + waited - (waited - delay)[first_repeat[order]]

    # --- one-off clicks, inside the simulated days only
    oneoff_local, _, _ = _segments(rng.poisson(activity * (1 - p.journey_share) * days))
    n_oneoff = len(oneoff_local)
    oneoff_item = catalog.choose(population.interest[users[oneoff_local]], p.oneoff_candidates,
                                 p.oneoff_temperature, rng)
    oneoff_time = rng.integers(0, days, n_oneoff) * DAY + _time_of_day(n_oneoff, p, rng)
    o_scenario, o_slot, o_device = _context(p.scenario_oneoff[None, :],
                                            np.zeros(n_oneoff, dtype=np.int64),
                                            profile[oneoff_local, DEVICE], p, rng)

    click_local = np.r_[ev_local[event[keep]], oneoff_local]
    bought_event = np.r_[buyer, again]
    return ChunkEvents(
        user=users[click_local],
        item=np.r_[item[event[keep]], oneoff_item],
        time=np.r_[time[keep], oneoff_time],
        scenario=np.r_[journeys.scenario[keep], o_scenario],
        slot=np.r_[journeys.slot[keep], o_slot],
        device=np.r_[journeys.device[keep], o_device],
        contribution=np.r_[journeys.contribution[keep], np.zeros(n_oneoff)],
        conversion_probability=np.r_[probability[event[keep]], np.zeros(n_oneoff)],
        journey=np.r_[event[keep], np.full(n_oneoff, -1)],
        conv_user=users[ev_local[bought_event]],
        conv_item=item[bought_event],
        conv_time=np.r_[buy_time, again_time],
        history_user=h_user, history_item=h_item, history_time=h_time,
    )
