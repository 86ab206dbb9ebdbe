"""Attribution labels of simulated clicks: direct attribution inside a window.

The journey of a purchase is every click of the same user on the same item in the window before
it. `last`, `first` and `linear` come from the attribution engine's rules; `mta` (the DDA label)
is each click's true contribution times log-normal noise, normalised over the journey, standing
in for a learned model such as CausalMTA. A click in several journeys sums its weights.
The true credit is the same share without the noise: what an attribution rule should give.
Each label became known at the first purchase that gives the click a positive weight under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from malt.sources.attribution import credit
from malt.sources.simulate.journeys import ChunkEvents

LABELS = ("last", "first", "linear", "mta")
"""Label columns in the order of the MAC schema."""


@dataclass
class Attribution:
    weights: np.ndarray        # float64 [N, 4], columns in LABELS order
    known_at: np.ndarray       # float64 [N, 4] first crediting purchase time (NaN: label 0)
    journey_size: np.ndarray   # int64 [P] clicks credited for each purchase (0: none in window)
    true_credit: np.ndarray    # float64 [N] share of the true contributions, summed over purchases


def window_journeys(click_key: np.ndarray, click_time: np.ndarray, conv_key: np.ndarray,
                    conv_time: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(purchase, click) pairs: clicks with the purchase's key and time in [t - window, t).

    Args:
        click_key, conv_key: int64 [N], [P] (user, item) keys.
        click_time, conv_time: int64 [N], [P] seconds.
    Returns:
        int64 [Q] purchase index and int64 [Q] click index of every pair.
    """
    keys, click_rank = np.unique(click_key, return_inverse=True)
    conv_rank = np.minimum(np.searchsorted(keys, conv_key), max(len(keys) - 1, 0))
    found = (keys[conv_rank] == conv_key) if len(keys) else np.zeros(len(conv_key), bool)
    origin = min(click_time.min(initial=0), conv_time.min(initial=0) - window)
    span = max(click_time.max(initial=0), conv_time.max(initial=0)) - origin + 1
    # One sorted int64 line: key rank major, time minor; every window is one contiguous run.
    line = click_rank * span + (click_time - origin)
    order = np.argsort(line, kind="stable")
    line = line[order]
    base = conv_rank * span - origin
    lo = np.searchsorted(line, base + conv_time - window, side="left")
    hi = np.searchsorted(line, base + conv_time, side="left")
    count = np.where(found, hi - lo, 0)
    purchase = np.repeat(np.arange(len(conv_key)), count)
    offset = np.arange(len(purchase)) - np.repeat(np.cumsum(count) - count, count)
    return purchase, order[np.repeat(lo, count) + offset]


def attribute(events: ChunkEvents, n_items: int, window: int, dda_noise: float,
              rng: np.random.Generator) -> Attribution:
    """Weights of every click of `events` under the four MAC rules, and its true credit."""
    n = len(events.user)
    purchase, click = window_journeys(events.user * n_items + events.item, events.time,
                                      events.conv_user * n_items + events.conv_item,
                                      events.conv_time, window)
    size = np.bincount(purchase, minlength=len(events.conv_time))
    weights = np.zeros((n, len(LABELS)))
    known_at = np.full((n, len(LABELS)), np.inf)
    for j, rule in enumerate(LABELS[:3]):
        w = credit(rule, purchase, events.time[click], click)
        weights[:, j] = np.bincount(click, weights=w, minlength=n)
        _first_credit(known_at[:, j], click, w, events.conv_time[purchase])
    true = events.contribution[click]
    noisy = true * np.exp(dda_noise * rng.normal(size=len(click)))
    total = np.bincount(purchase, weights=noisy, minlength=len(size))[purchase]
    # A journey whose clicks all contributed nothing (only possible for a repeat purchase whose
    # window lost the causal clicks) falls back to equal shares; its true credit is nothing.
    w = np.where(total > 0, noisy / np.where(total > 0, total, 1.0), 1.0 / size[purchase])
    weights[:, 3] = np.bincount(click, weights=w, minlength=n)
    _first_credit(known_at[:, 3], click, w, events.conv_time[purchase])
    known_at[np.isinf(known_at)] = np.nan
    true_total = np.bincount(purchase, weights=true, minlength=len(size))[purchase]
    share = true / np.where(true_total > 0, true_total, 1.0)
    return Attribution(weights=weights, known_at=known_at, journey_size=size,
                       true_credit=np.bincount(click, weights=share, minlength=n))


def _first_credit(out: np.ndarray, click: np.ndarray, weight: np.ndarray, time: np.ndarray
                  ) -> None:
    """Lower `out` [N] (a view of one label's column) to the earliest purchase time [Q] of the
    pairs (click [Q], weight [Q]) that give the click positive credit."""
    credited = weight > 0
    np.minimum.at(out, click[credited], time[credited].astype(np.float64))
