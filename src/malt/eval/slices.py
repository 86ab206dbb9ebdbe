"""Gains of a run over a baseline by slices of the evaluated rows: by a column of the data (an
industry, an advertiser), by user activity or by conversion-path complexity, each with its
paired bootstrap interval over the slice's users."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from malt.bootstrap import PairedDelta, paired_bootstrap
from malt.data.layout import find_layout
from malt.errors import ConfigError, DataError
from malt.eval.predictions import Predictions
from malt.metrics import DEFAULT_COMPLEXITY_EDGES, gauc

ACTIVITY = "activity"
COMPLEXITY = "complexity"
ACTIVITY_EDGES = (1, 2, 4, 8, 16)
"""Lower bounds of the user-activity slices: clicks of the user among the evaluated rows."""
MAX_SLICES = 20
"""Slices shown for a column; the rest are pooled into one "other" slice."""
MIN_USERS = 20
"""Users with both classes a slice needs for an interval: a bootstrap over fewer clusters
does not describe the uncertainty (over one user it has none)."""


@dataclass(frozen=True)
class SliceGain:
    """The run against the baseline on the rows of one slice."""

    name: str
    rows: int
    users: int
    gauc_run: float
    gauc_baseline: float
    deltas: dict[str, PairedDelta]

    @property
    def has_interval(self) -> bool:
        return self.users >= MIN_USERS


def bucket_names(edges: Sequence[float], unit: str = "") -> list[str]:
    """The names of the buckets between `edges`, lowest first: "[1, 2)", ..., "≥ 16"."""
    highs = [*edges[1:], None]
    return [f"[{lo:g}, {hi:g}){unit}" if hi is not None else f"≥ {lo:g}{unit}"
            for lo, hi in zip(edges, highs)]


ACTIVITY_NAMES = tuple(bucket_names(ACTIVITY_EDGES, " clicks"))
"""The user-activity slices, least active first."""
COMPLEXITY_NAMES = tuple(bucket_names(DEFAULT_COMPLEXITY_EDGES))
"""The path-complexity slices of the default edges, simplest paths first."""


def activity_slices(user: np.ndarray) -> np.ndarray:
    """[N] the slice of each row by its user's clicks among the rows: [1, 2), [2, 4), ..."""
    _, index, clicks = np.unique(user, return_inverse=True, return_counts=True)
    bucket = np.searchsorted(ACTIVITY_EDGES, clicks[index.reshape(-1)], side="right") - 1
    return np.array(ACTIVITY_NAMES, dtype=object)[bucket]


def complexity_slices(user: np.ndarray, multi: np.ndarray, single: np.ndarray,
                      edges: Sequence[float] = DEFAULT_COMPLEXITY_EDGES) -> np.ndarray:
    """[N] the slice of each row by its user's path complexity: positives of the multi-touch
    label (e.g. linear) over positives of the single-touch one (e.g. last-click) among the
    rows; "" for users without a single-touch positive (no conversion path ends there)."""
    _, index = np.unique(user, return_inverse=True)
    index = index.reshape(-1)
    n_multi = np.bincount(index, np.asarray(multi) > 0)
    n_single = np.bincount(index, np.asarray(single) > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = n_multi / n_single
    bucket = np.searchsorted(np.asarray(edges, dtype=np.float64), ratio, side="right") - 1
    names = np.array([*bucket_names(edges), ""], dtype=object)
    bucket = np.where((n_single > 0) & (bucket >= 0), bucket, len(edges))
    return names[bucket[index]]


def column_slices(data: str | Path, predictions: Predictions, column: str) -> np.ndarray:
    """[N] the value of `column` on every evaluated row, read from the day files of `data`
    that the predictions were made on."""
    if not predictions.days:
        raise ConfigError("these predictions do not name their days (saved by an older malt); "
                          "recompute them with malt eval --run RUN --data DIR")
    files = {path.stem: path for path in find_layout(data, vocabs=False).days}
    parts = []
    for day, rows in zip(predictions.days, predictions.day_rows):
        if day not in files:
            raise ConfigError(f"{data} has no day '{day}', which the run was evaluated on")
        columns = pq.read_schema(files[day]).names
        if column not in columns:
            raise DataError(f"no column '{column}' to slice by; its columns: "
                            f"{', '.join(columns)}", file=str(files[day]))
        values = pq.read_table(files[day], columns=[column]).column(0)
        if len(values) != rows:
            raise DataError(f"{len(values):,} rows where the run scored {rows:,}: not the data "
                            "the run was evaluated on", file=str(files[day]))
        parts.append(np.asarray(values.to_numpy(zero_copy_only=False), dtype=object))
    return np.concatenate(parts).astype(str)


def pool_small(slices: np.ndarray, keep: int = MAX_SLICES) -> np.ndarray:
    """`slices` with all but the `keep` largest pooled into "other"."""
    names, counts = np.unique(slices, return_counts=True)
    if len(names) <= keep:
        return slices
    largest = names[np.argsort(-counts, kind="stable")[:keep]]
    return np.where(np.isin(slices, largest), slices, "other")


def slice_gains(run: Predictions, baseline: Predictions, view: str, slices: np.ndarray, *,
                resamples: int, seed: int = 0,
                order: Sequence[str] | None = None) -> list[SliceGain]:
    """The run − baseline on `view` in every slice (rows sharing a value of `slices` [N];
    rows whose slice is "" are left out): in `order` when given (bucket names, lowest
    first), else the largest first and "other" last."""
    return slice_gains_over_seeds([run], [baseline], view, slices, resamples=resamples,
                                  seed=seed, order=order)


def slice_gains_over_seeds(runs: Sequence[Predictions], baselines: Sequence[Predictions],
                           view: str, slices: np.ndarray, *, resamples: int, seed: int = 0,
                           order: Sequence[str] | None = None) -> list[SliceGain]:
    """`slice_gains` for runs of several training seeds, run s paired with baseline s, all
    scored on the same rows: the differences pooled over the seeds, the GAUCs their means."""
    first = runs[0]
    labels = (first.label_weights(view) > 0).astype(np.float64)
    names, counts = np.unique(slices[slices != ""], return_counts=True)
    if order is None:
        names = names[np.lexsort((-counts, names == "other"))]
    else:
        names = [name for name in order if name in set(names)]
    out = []
    for name in names:
        rows = np.flatnonzero(slices == name)
        user = first.user[rows]
        deltas = paired_bootstrap([r.view(view)[rows] for r in runs],
                                  [b.view(view)[rows] for b in baselines],
                                  labels[rows], user, metrics=("auc", "gauc"),
                                  resamples=resamples, seed=seed)
        mean_gauc = [float(np.mean([gauc(p.view(view)[rows], labels[rows], user).value
                                    for p in side])) for side in (runs, baselines)]
        out.append(SliceGain(str(name), len(rows), deltas["gauc"].users, *mean_gauc, deltas))
    return out


def format_slices(gains: Sequence[SliceGain], by: str) -> str:
    """One line per slice: rows, users, GAUC of both, ΔGAUC and ΔAUC with their intervals."""
    width = max([len(by), *(len(g.name) for g in gains)]) + 2
    lines = [f"{by:<{width}}{'rows':>10}{'users':>9}{'GAUC run':>10}{'GAUC base':>11}  "
             f"{'ΔGAUC (pt) [95%]':<24}{'ΔAUC (pt) [95%]':<24}"]
    for g in gains:
        cells = [_delta_cell(g.deltas[k], g.has_interval) for k in ("gauc", "auc")]
        lines.append(f"{g.name:<{width}}{g.rows:>10,}{g.users:>9,}{_number(g.gauc_run):>10}"
                     f"{_number(g.gauc_baseline):>11}  {cells[0]:<24}{cells[1]:<24}".rstrip())
    lines[0] = lines[0].rstrip()
    lines.append(f"Δ = run − baseline in points, 95 % paired bootstrap interval over the slice's "
                 f"users; † where it excludes 0; no interval under {MIN_USERS} users; – where "
                 f"the slice's labels leave the metric undefined.")
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "–"


def _delta_cell(delta: PairedDelta, interval: bool) -> str:
    if not math.isfinite(delta.estimate):
        return "–"
    if not interval:
        return f"{100 * delta.estimate:+.2f}"
    return delta.points() + ("†" if delta.excludes_zero else "")
