"""Simulate a whole data set and write it in the MAC release layout.

Users are simulated in chunks of `SimConfig.chunk_users` (every journey and purchase of a user
lives in its chunk). Each chunk's written clicks are spilled per day in a compact form to a
temporary folder; then each day is sorted by time, expanded into the full MAC columns (purchase
history looked up in all purchases) and written. Memory is bounded by one chunk, then one day.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from malt.data.layout import day_path, write_day, write_vocab
from malt.data.schema import MAC, SCHEMA_FILE
from malt.errors import ConfigError, os_errors_as
from malt.outputs import DATA_KIND, atomic_write_text, staged_output
from malt.sources.simulate.catalog import Catalog, build_catalog
from malt.sources.simulate.config import DAY, SimConfig
from malt.sources.simulate.features import ClickRows, PurchaseHistory, day_table
from malt.sources.simulate.impressions import click_probability, schema_toml
from malt.sources.simulate.journeys import simulate_chunk
from malt.sources.simulate.labels import attribute
from malt.sources.simulate.population import Population, build_population
from malt.sources.simulate.stats import SimStats

_PADDED = {s.shares for s in MAC.id_sequences}


class _VocabCollector:
    """The raw ids seen in every vocab column, over all days."""

    def __init__(self) -> None:
        self.seen: dict[str, list[np.ndarray]] = {c: [] for c in MAC.vocab_columns}
        for column in _PADDED:
            self.seen[column].append(np.array([int(MAC.sequence_pad)], dtype=np.int64))

    def add(self, table: pa.Table) -> None:
        for column in MAC.vocab_columns:
            self.seen[column].append(pc.unique(table[column]).to_numpy())
        for spec in MAC.id_sequences:
            flat = pc.list_flatten(table[spec.name])
            self.seen[spec.shares].append(pc.unique(flat).to_numpy())

    def write(self, vocab_dir: Path) -> None:
        for column, parts in self.seen.items():
            ids = np.unique(np.concatenate(parts))
            write_vocab(vocab_dir, column, [str(i) for i in ids.tolist()])


def _spill(rows: ClickRows, day: np.ndarray, days: int, tmp: Path, chunk: int) -> None:
    """Save the rows of each day [N] of one chunk to its own file."""
    order = np.argsort(day, kind="stable")
    bounds = np.searchsorted(day[order], np.arange(days + 1))
    for d in range(days):
        rows.take(order[bounds[d]:bounds[d + 1]]).save(tmp / f"day{d:03d}-{chunk:05d}.npz")


def _simulate_chunks(config: SimConfig, catalog: Catalog, population: Population, tmp: Path,
                     stats: SimStats, progress: Callable[[str], None], impressions: bool
                     ) -> PurchaseHistory:
    p = config.params
    chunks = -(-config.users // config.chunk_users)
    seeds = np.random.SeedSequence([config.seed, 2]).spawn(chunks)
    # The truth's own stream: estimating it never changes a written click or label.
    truth_seeds = np.random.SeedSequence([config.seed, 3]).spawn(chunks)
    # Deferred purchases (long-tail delays) draw from a stream of their own too.
    delay_seeds = np.random.SeedSequence([config.seed, 4]).spawn(chunks)
    # Impression logs draw their clicks from a stream of their own (the rows stay the same).
    click_seeds = np.random.SeedSequence([config.seed, 5]).spawn(chunks)
    window = int(round(p.window_days * DAY))
    purchases: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for c in range(chunks):
        rng = np.random.default_rng(seeds[c])
        users = np.arange(c * config.chunk_users, min((c + 1) * config.chunk_users, config.users))
        events = simulate_chunk(catalog, population, users, config.days, p, rng,
                                np.random.default_rng(truth_seeds[c]),
                                delay_rng=np.random.default_rng(delay_seeds[c]))
        labels = attribute(events, catalog.items, window, p.dda_noise, rng)
        rows = ClickRows(user=events.user, item=events.item, time=events.time,
                         scenario=events.scenario, slot=events.slot, device=events.device,
                         weights=labels.weights, known_at=labels.known_at,
                         true_cvr=events.conversion_probability,
                         true_credit=labels.true_credit)
        if impressions:
            rows = as_impressions(rows, np.random.default_rng(click_seeds[c]))
        purchases.append((events.history_user, events.history_item, events.history_time))
        purchases.append((events.conv_user, events.conv_item, events.conv_time))

        day = np.floor_divide(events.time, DAY)
        written = np.flatnonzero((day >= 0) & (day < config.days))
        in_days = (events.conv_time >= 0) & (events.conv_time < config.days * DAY)
        stats.add_chunk(events.user[written], events.journey[written],
                        rows.weights[written], events.conv_user[in_days],
                        labels.journey_size[in_days],
                        None if rows.click is None else rows.click[written])
        _spill(rows.take(written), day[written], config.days, tmp, c)
        progress(f"  simulated users {users[0]:,}-{users[-1]:,} ({c + 1}/{chunks}): "
                 f"{len(written):,} clicks")
    return PurchaseHistory(*(np.concatenate(parts) for parts in zip(*purchases)))


def as_impressions(rows: ClickRows, rng: np.random.Generator) -> ClickRows:
    """`rows` as impressions: each clicked with `click_probability`, the labels, known-at times
    and true credit of the unclicked ones 0 (or unknown); see
    `malt.sources.simulate.impressions`."""
    ctr = click_probability(rows.true_cvr, rows.slot)
    clicked = rng.random(len(ctr)) < ctr
    return replace(rows, weights=np.where(clicked[:, None], rows.weights, 0.0),
                   known_at=np.where(clicked[:, None], rows.known_at, np.nan),
                   true_credit=np.where(clicked, rows.true_credit, 0.0),
                   click=clicked.astype(np.int8), true_ctr=ctr)


def simulate(config: SimConfig, out: str | Path, *, overwrite: bool = False,
             progress: Callable[[str], None] | None = None, impressions: bool = False
             ) -> SimStats:
    """Simulate `config` and write it under `out` (MAC layout); returns the statistics.

    With `impressions` every click becomes an impression, clicked or not (see
    `malt.sources.simulate.impressions`), and the data set gets a `schema.toml` naming the
    click column.

    The same config (seed included) writes the same files. The data set is built in a hidden
    sibling of `out` and moved into place when complete (`malt.outputs.staged_output`); an
    earlier data set in `out` is replaced only with `overwrite`.
    """
    # The simulation reads nothing: what the system refuses is a write of the data set.
    with staged_output(out, DATA_KIND, overwrite=overwrite) as stage, \
            os_errors_as(out, action="write"):
        return _simulate_into(config, stage, progress or (lambda _: None), impressions)


def _simulate_into(config: SimConfig, out: Path, say: Callable[[str], None],
                   impressions: bool) -> SimStats:
    started = time.perf_counter()
    world, people = np.random.SeedSequence([config.seed, 1]).spawn(2)
    catalog = build_catalog(config.items, config.params, np.random.default_rng(world))
    population = build_population(config.users, config.params, np.random.default_rng(people))
    stats = SimStats()
    tmp = out / ".spill"
    tmp.mkdir()
    try:
        history = _simulate_chunks(config, catalog, population, tmp, stats, say, impressions)
        vocab = _VocabCollector()
        for d in range(config.days):
            parts = sorted(tmp.glob(f"day{d:03d}-*.npz"))
            rows = ClickRows.concat([ClickRows.load(path) for path in parts])
            if len(rows.user) == 0:
                raise ConfigError(f"day {d} has no clicks: simulate more --users")
            rows = rows.take(np.argsort(rows.time, kind="stable"))
            table = day_table(rows, catalog, population, history)
            vocab.add(table)
            split, index = ("test", 0) if d == config.days - 1 else ("train", d)
            path = day_path(out, split, index)
            write_day(path, table)
            stats.rows_per_day.append(table.num_rows)
            for part in parts:
                part.unlink()
            say(f"  wrote {path.relative_to(out)}: {table.num_rows:,} rows")
            del table, rows
            # Hand the day's buffers back to the system so the next day starts from the same
            # footprint (the allocator would otherwise keep them and grow the peak).
            pa.default_memory_pool().release_unused()
        vocab.write(out / "vocabs")
        if impressions:
            atomic_write_text(out / SCHEMA_FILE, schema_toml())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stats.seconds = time.perf_counter() - started
    return stats
