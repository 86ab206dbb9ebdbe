"""Turn a day of simulated clicks into a table with every column of the MAC release.

Columns: `user_id`; `user_feat0..5` (age band, gender, city tier, spending power, membership,
device); `ad_feat0..5` (item, shop, category, brand, adgroup, price band); `context_feat0..3`
(scenario, hour band, position band, device); the user's 20 most recent purchases before the
click (`ad_feat0..2_seq`: item, shop, category; most recent first, padded with id 0) with the two
encoders' similarity of each purchased item to the clicked one (`mm_feat0_seq`, `mm_feat1_seq`,
0.0 where padded); the labels `last`, `first`, `linear`, `mta`; and the truth no model reads
(`true_cvr`: the chance that the click's journey ends in a purchase; `true_credit`: its share
of the true contributions to the purchases it is credited for; see `MAC.truth_columns`); and
each label's `<label>_known_at`, the time (seconds from day 0) of the first purchase that
credits the click under the label, null where the label is 0; and `click_time`, the click's
time on the same clock. Impression logs (`--impressions`) add `click` (0 or 1) and `true_ctr`
(the chance of the click; see `malt.sources.simulate.impressions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from malt.data.schema import MAC
from malt.sources.simulate.catalog import Catalog
from malt.sources.simulate.config import SEQUENCE_LENGTH
from malt.sources.simulate.impressions import CLICK_COLUMN, TRUE_CTR_COLUMN
from malt.sources.simulate.journeys import hour_band
from malt.sources.simulate.labels import LABELS
from malt.sources.simulate.population import Population

_TABLE_BATCH = 1 << 17
_AD_FIELDS = ("item", "shop", "category", "brand", "adgroup", "price_band")


@dataclass
class ClickRows:
    """The compact form of simulated clicks, kept between simulating and writing a day."""

    user: np.ndarray       # int64 [N] global user index
    item: np.ndarray       # int64 [N]
    time: np.ndarray       # int64 [N]
    scenario: np.ndarray   # int8 [N]
    slot: np.ndarray       # int8 [N]
    device: np.ndarray     # int8 [N]
    weights: np.ndarray    # float64 [N, 4] in LABELS order
    known_at: np.ndarray   # float64 [N, 4] time each label became known (NaN where it is 0)
    true_cvr: np.ndarray   # float64 [N]
    true_credit: np.ndarray  # float64 [N]
    click: np.ndarray | None = None     # int8 [N] impression logs: 1 where clicked
    true_ctr: np.ndarray | None = None  # float64 [N] impression logs: P(click)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays held (the impression columns only in impression logs)."""
        return {k: v for k, v in vars(self).items() if v is not None}

    def take(self, index: np.ndarray | slice) -> ClickRows:
        return ClickRows(**{k: v[index] for k, v in self.arrays().items()})

    def save(self, path: Path) -> None:
        np.savez(path, **self.arrays())

    @classmethod
    def load(cls, path: Path) -> ClickRows:
        with np.load(path) as data:
            return cls(**{k: data[k] for k in data.files})

    @classmethod
    def concat(cls, parts: list[ClickRows]) -> ClickRows:
        return cls(**{k: np.concatenate([p.arrays()[k] for p in parts])
                      for k in parts[0].arrays()})


class PurchaseHistory:
    """Every purchase, sorted by user and time, to look up what a user bought before a click."""

    def __init__(self, user: np.ndarray, item: np.ndarray, time: np.ndarray):
        self._origin = int(time.min(initial=0))
        self._span = int(time.max(initial=0)) - self._origin + 2
        key = user * self._span + (time - self._origin)
        order = np.argsort(key, kind="stable")
        self._key = key[order]
        self.item = item[order]

    def before(self, user: np.ndarray, time: np.ndarray, length: int = SEQUENCE_LENGTH
               ) -> np.ndarray:
        """Items bought by `user` [N] strictly before `time` [N], most recent first: int64
        [N, length], -1 where the history is shorter."""
        if not len(self.item):
            return np.full((len(user), length), -1, dtype=np.int64)
        first = np.searchsorted(self._key, user * self._span)
        clipped = np.clip(time - self._origin, 0, self._span - 1)
        end = np.searchsorted(self._key, user * self._span + clipped)
        position = end[:, None] - 1 - np.arange(length)
        valid = position >= first[:, None]
        return np.where(valid, self.item[np.maximum(position, 0)], -1)


def _ids(values: np.ndarray) -> pa.Array:
    # Every simulated id fits in int32, which halves the largest columns (the sequences).
    return pa.array(values.astype(np.int32, copy=False))


def _lists(matrix: np.ndarray, dtype: pa.DataType) -> pa.Array:
    n, length = matrix.shape
    offsets = pa.array(np.arange(0, n * length + 1, length, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=dtype))


def _similarity(encoder: np.ndarray, history: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Cosine of each purchased item [N, L] (-1 pad) with the clicked one [N] -> float32."""
    sim = np.einsum("nlk,nk->nl", encoder[np.maximum(history, 0)].astype(np.float32),
                    encoder[item].astype(np.float32))
    return np.where(history >= 0, np.clip(sim, -1.0, 1.0), np.float32(0.0))


def _table(rows: ClickRows, catalog: Catalog, population: Population,
           purchases: PurchaseHistory) -> pa.Table:
    item = rows.item
    columns: dict[str, pa.Array] = {"user_id": _ids(population.raw_id[rows.user])}
    profile = population.profile[rows.user]
    for j in range(profile.shape[1]):
        columns[f"user_feat{j}"] = _ids(profile[:, j].astype(np.int32) + 1)
    groups = {"item": item, "shop": catalog.shop[item], "category": catalog.category[item],
              "brand": catalog.brand[item], "adgroup": catalog.adgroup[item],
              "price_band": catalog.price_band[item]}
    for j, name in enumerate(_AD_FIELDS):
        columns[f"ad_feat{j}"] = _ids(catalog.raw[name][groups[name]])
    context = (rows.scenario, hour_band(rows.time), rows.slot, rows.device)
    for j, values in enumerate(context):
        columns[f"context_feat{j}"] = _ids(values.astype(np.int32) + 1)

    history = purchases.before(rows.user, rows.time)
    bought = history >= 0
    safe = np.maximum(history, 0)
    for j, (name, ids) in enumerate((("item", safe), ("shop", catalog.shop[safe]),
                                     ("category", catalog.category[safe]))):
        raw = np.where(bought, catalog.raw[name][ids], int(MAC.sequence_pad))
        columns[f"ad_feat{j}_seq"] = _lists(raw.astype(np.int32), pa.int32())
    for j, encoder in enumerate(catalog.encoders):
        columns[f"mm_feat{j}_seq"] = _lists(_similarity(encoder, history, item), pa.float32())
    for j, label in enumerate(LABELS):
        columns[label] = pa.array(rows.weights[:, j])
    columns[MAC.true_probability_column] = pa.array(rows.true_cvr)
    columns[MAC.true_credit_column] = pa.array(rows.true_credit)
    for j, column in enumerate(MAC.known_at_columns):
        known = rows.known_at[:, j]
        columns[column] = pa.array(known, mask=np.isnan(known))
    columns[MAC.click_time] = pa.array(rows.time.astype(np.float64))
    order = [*MAC.columns, *MAC.truth_columns, *MAC.known_at_columns, MAC.click_time]
    if rows.click is not None:
        columns[CLICK_COLUMN] = pa.array(rows.click.astype(np.int8))
        columns[TRUE_CTR_COLUMN] = pa.array(rows.true_ctr)
        order += [CLICK_COLUMN, TRUE_CTR_COLUMN]
    return pa.table({c: columns[c] for c in order})


def day_table(rows: ClickRows, catalog: Catalog, population: Population,
              purchases: PurchaseHistory) -> pa.Table:
    """The MAC-layout table of one day's clicks, in the order of `rows`."""
    parts = [_table(rows.take(slice(lo, lo + _TABLE_BATCH)), catalog, population, purchases)
             for lo in range(0, len(rows.user), _TABLE_BATCH)]
    return pa.concat_tables(parts)
