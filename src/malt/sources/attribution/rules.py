"""Rule-based credit: split each conversion among the clicks of its journey.

The input is one row per (journey, click) pair, where a journey is the set of clicks credited
for one conversion (already restricted to the attribution window and to clicks before the
conversion). Every rule returns weights in [0, 1] that sum to 1 over each journey. Clicks are
ordered by time, ties broken by click id.
"""

from __future__ import annotations

import numpy as np

RULES = ("last", "first", "linear", "position", "time_decay")


def credit(rule: str, journey: np.ndarray, click_time: np.ndarray, click_id: np.ndarray,
           age: np.ndarray | None = None, *, half_life: float = 7 * 86400.0,
           position_shares: tuple[float, float, float] = (0.4, 0.2, 0.4)) -> np.ndarray:
    """Weight of every (journey, click) pair under `rule`.

    Args:
        rule: one of `RULES`.
        journey: int [P] journey (conversion) id of each pair.
        click_time: [P] click timestamps; click_id: int [P] tie-breaker.
        age: [P] conversion time minus click time, needed by `time_decay`.
        half_life: time for a click's `time_decay` weight to halve (same unit as `age`).
        position_shares: (first, middle, last) shares of the U-shaped `position` rule, scaled
            to sum to 1; with two clicks the first and last shares are renormalised, with one
            click it gets 1.
    Returns:
        float64 [P] weights, in the input order, summing to 1 within each journey.
    """
    if rule not in RULES:
        raise ValueError(f"unknown attribution rule '{rule}', expected one of {RULES}")
    if half_life <= 0:
        raise ValueError(f"half_life must be positive, got {half_life}")
    if min(position_shares) < 0 or position_shares[0] + position_shares[2] <= 0:
        raise ValueError(f"position_shares must be non-negative with a positive first + last "
                         f"share, got {position_shares}")
    n = len(journey)
    if n == 0:
        return np.zeros(0)
    order, group, start_pos = sort_journeys(journey, click_time, click_id)
    size = np.diff(np.r_[start_pos, n])[group]
    rank = np.arange(n) - start_pos[group]

    if rule == "last":
        w = (rank == size - 1).astype(np.float64)
    elif rule == "first":
        w = (rank == 0).astype(np.float64)
    elif rule == "linear":
        w = 1.0 / size
    elif rule == "position":
        first, middle, last = scaled_shares(position_shares)
        ends = np.where(rank == 0, first, last)
        w = np.where(size == 1, 1.0,
                     np.where(size == 2, ends / (first + last),
                              np.where((rank == 0) | (rank == size - 1), ends,
                                       middle / np.maximum(size - 2, 1))))
    else:  # time_decay
        if age is None:
            raise ValueError("the time_decay rule needs the click ages")
        sorted_age = np.asarray(age, dtype=np.float64)[order]
        # Measure ages from the youngest click of each journey: that click's term is 1, so the
        # normaliser never underflows to 0 however old the journey is.
        youngest = np.minimum.reduceat(sorted_age, start_pos)[group]
        raw = np.exp2(-(sorted_age - youngest) / half_life)
        w = raw / np.bincount(group, weights=raw)[group]
    out = np.empty(n)
    out[order] = w
    return out


def scaled_shares(position_shares: tuple[float, float, float]) -> tuple[float, float, float]:
    """The (first, middle, last) shares of the `position` rule, scaled to sum to 1."""
    first, middle, last = np.asarray(position_shares, dtype=np.float64) / sum(position_shares)
    return float(first), float(middle), float(last)


def sort_journeys(journey: np.ndarray, click_time: np.ndarray, click_id: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order pairs by journey, click time, click id.

    Args:
        journey: int [P]; click_time: [P]; click_id: int [P].
    Returns:
        order int [P] (the sorting permutation), group int [P] (0-based journey number of each
        sorted pair) and start int [J] (first sorted position of each of the J journeys).
    """
    order = sort_order(journey, click_time, click_id)
    sorted_journey = np.asarray(journey)[order]
    starts = np.empty(len(order), dtype=bool)
    starts[:1] = True
    starts[1:] = sorted_journey[1:] != sorted_journey[:-1]
    return order, np.cumsum(starts) - 1, np.flatnonzero(starts)



def sort_order(key: np.ndarray, time: np.ndarray, click_id: np.ndarray) -> np.ndarray:
    """int64 [N] permutation sorting by key, then time, then click id; the identity, without a
    sort, when the input is in that order already (as journeys and paths usually are)."""
    key, time, click_id = np.asarray(key), np.asarray(time), np.asarray(click_id)
    later = (key[1:] > key[:-1]) | ((key[1:] == key[:-1]) & (
        (time[1:] > time[:-1]) | ((time[1:] == time[:-1]) & (click_id[1:] >= click_id[:-1]))))
    if later.all():
        return np.arange(len(key), dtype=np.int64)
    return np.lexsort((click_id, time, key)).astype(np.int64)
