"""Journeys: which clicks share the credit of which conversion.

A conversion's journey is every click that (a) matches the conversion's key, (b) happened no
later than the conversion (`click_time <= conversion_time`; a click at the very same second
counts, a later one never does) and (c) lies inside the attribution window
(`conversion_time - click_time <= window`). The key decides the matching mode:

    direct          (user, item)   only clicks on the converted item (the default, as in MAC)
    indirect-shop   (user, shop)   clicks on any item of the converted item's shop
    indirect-any    (user)         any click of the user
    given           (journey id)   the log names each click's conversion (Criteo layout)

The result is one row per (conversion, click) pair, ordered by conversion, then click time, then
click id. A click may sit in several journeys; clicks in none get no credit under any rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from malt.sources.attribution.config import DAY, DEFAULT_WINDOW_DAYS
from malt.sources.attribution.rules import sort_order


@dataclass(frozen=True)
class Journeys:
    """(conversion, click) pairs, ordered by conversion, click time, click id.

    conversion: int64 [P] row of the conversion in the conversion table.
    click:      int64 [P] row of the click in the click table.
    age:        float64 [P] conversion time minus click time (>= 0, <= window).
    key_order:  int64 [N] every click, sorted by matching key, click time, click id.
    """

    conversion: np.ndarray
    click: np.ndarray
    age: np.ndarray
    key_order: np.ndarray
    n_conversions: int
    n_clicks: int

    def __len__(self) -> int:
        return len(self.click)

    @property
    def sizes(self) -> np.ndarray:
        """int64 [M] number of clicks in the journey of every conversion (0 if none)."""
        return np.bincount(self.conversion, minlength=self.n_conversions)

    def click_totals(self, weights: np.ndarray) -> np.ndarray:
        """float64 [N] label of every click: the sum of its pair weights [P] over journeys."""
        return np.bincount(self.click, weights=weights, minlength=self.n_clicks)

    def first_credit(self, weights: np.ndarray, conversion_time: np.ndarray) -> np.ndarray:
        """float64 [N] time each click's label became known: the earliest conversion time [M]
        among its pairs of positive weight [P] (NaN for a click that none credits)."""
        credited = weights > 0
        first = np.full(self.n_clicks, np.inf)
        np.minimum.at(first, self.click[credited], conversion_time[self.conversion[credited]])
        first[np.isinf(first)] = np.nan
        return first

    def within(self, window: float, click_time: np.ndarray, conversion_time: np.ndarray
               ) -> Journeys:
        """The pairs inside a window no wider than the one these journeys were matched under,
        in the same order: `click_time >= conversion_time - window`, the comparison
        `build_journeys` makes, so the result equals matching under `window` itself."""
        inside = click_time[self.click] >= conversion_time[self.conversion] - window
        if inside.all():
            return self
        return Journeys(conversion=self.conversion[inside], click=self.click[inside],
                        age=self.age[inside], key_order=self.key_order,
                        n_conversions=self.n_conversions, n_clicks=self.n_clicks)


def key_codes(click_columns: list[np.ndarray], conversion_columns: list[np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Joint integer codes of composite keys, equal exactly when every column is equal.

    Args:
        click_columns: K arrays [N] (one per key column) for the clicks.
        conversion_columns: the same K columns [M] for the conversions.
    Returns:
        int64 [N] and int64 [M] codes; a missing value (None / NaN) matches nothing.
    """
    n = len(click_columns[0])
    code = None
    for clicks, conversions in zip(click_columns, conversion_columns, strict=True):
        values = pd.concat([pd.Series(clicks), pd.Series(conversions)], ignore_index=True)
        column, uniques = pd.factorize(values, use_na_sentinel=True)
        column = column.astype(np.int64)
        if code is None:
            code = column
        else:
            missing = (code < 0) | (column < 0)
            code, _ = pd.factorize(code * (len(uniques) + 1) + column)
            code = np.where(missing, -1, code).astype(np.int64)
    # Give every missing key its own negative code so that missing never matches missing.
    missing = np.flatnonzero(code < 0)
    code[missing] = -1 - np.arange(len(missing))
    return code[:n], code[n:]


def build_journeys(click_key: np.ndarray, click_time: np.ndarray, click_id: np.ndarray,
                   conversion_key: np.ndarray, conversion_time: np.ndarray,
                   window: float = DEFAULT_WINDOW_DAYS * DAY) -> Journeys:
    """All (conversion, click) pairs with equal keys and `0 <= conversion_time - click_time <=
    window`, without a Python loop: clicks and the two ends of every conversion's window are
    merged in one sort, and each conversion's journey is a contiguous run of sorted clicks.

    Args:
        click_key: int64 [N]; click_time: float [N] seconds; click_id: int [N] tie-breaker.
        conversion_key: int64 [M]; conversion_time: float [M] seconds.
        window: attribution window in seconds (`np.inf` for none).
    Returns:
        `Journeys` with P pairs.
    """
    n, m = len(click_key), len(conversion_key)
    if window < 0 or np.isnan(window):
        raise ValueError(f"the attribution window must be >= 0 seconds, got {window}")
    click_time = np.asarray(click_time, dtype=np.float64)
    conversion_time = np.asarray(conversion_time, dtype=np.float64)
    keys = np.concatenate([click_key, conversion_key, conversion_key])
    times = np.concatenate([click_time, conversion_time - window, conversion_time])
    # At equal (key, time) a window start sorts before the clicks and a conversion after them,
    # so both window ends are inclusive; clicks among themselves sort by click id.
    priority = np.concatenate([np.ones(n, np.int8), np.zeros(m, np.int8), np.full(m, 2, np.int8)])
    ids = np.concatenate([click_id, np.zeros(2 * m, dtype=np.asarray(click_id).dtype)])
    order = np.lexsort((ids, priority, times, keys))
    is_click = order < n
    clicks_before = np.cumsum(is_click) - is_click
    position = np.empty(n + 2 * m, dtype=np.int64)
    position[order] = clicks_before
    lo, hi = position[n:n + m], position[n + m:]
    sorted_clicks = order[is_click]

    sizes = hi - lo
    total = int(sizes.sum())
    conversion = np.repeat(np.arange(m, dtype=np.int64), sizes)
    run_start = np.cumsum(sizes) - sizes
    rank = np.arange(total, dtype=np.int64) - np.repeat(run_start, sizes)
    click = sorted_clicks[np.repeat(lo, sizes) + rank].astype(np.int64)
    age = conversion_time[conversion] - click_time[click]
    return Journeys(conversion=conversion, click=click, age=age,
                    key_order=sorted_clicks.astype(np.int64), n_conversions=m, n_clicks=n)


def split_paths(key: np.ndarray, time: np.ndarray, click_id: np.ndarray, gap: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Group clicks into paths: same key, consecutive clicks at most `gap` seconds apart.

    Args:
        key: int64 [N]; time: float [N]; click_id: int [N].
    Returns:
        order int64 [N] (clicks sorted by key, time, id) and path int64 [N] (path number of
        each sorted click, 0..paths-1, increasing along `order`).
    """
    order = sort_order(key, time, click_id)
    k, t = key[order], np.asarray(time, dtype=np.float64)[order]
    new = np.r_[True, (k[1:] != k[:-1]) | (np.diff(t) > gap)] if len(k) else np.zeros(0, bool)
    return order, np.cumsum(new) - 1
