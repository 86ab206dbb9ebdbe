"""Predictions of a model on the evaluation days, gathered over ranks, in day-file row order.

Every label view with a head is scored (the main view and each auxiliary attribution; `cat` is
never evaluated). On impression logs the predictions also hold each row's click and, for an
entire-space model (`malt.models.entire_space`), its predicted click rate.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from malt.data.batches import DayBatches
from malt.data.cache import Day
from malt.data.schema import Schema
from malt.data.task import Task
from malt.errors import ConfigError, file_error
from malt.models.entire_space import EntireSpace
from malt.models.model import MaltModel
from malt.outputs import atomic_write
from malt.precision import autocast
from malt.training.distributed import World, gather_arrays


@dataclass
class Predictions:
    """Scores of the evaluated views on the evaluation rows, in day-file row order.

    probs [N, V] float32 (columns = `views`), weights [N, K] float32 raw weights of every schema
    label (columns = `labels`), user [N] int64, and target_action [N] int64 (label index, -1 =
    other) when the data has a target-action column. `days` and `day_rows` name the evaluation
    days and their row counts, in row order (empty for predictions saved before malt kept them).
    On impression logs, click [N] float32 (1 for a clicked impression), and for an entire-space
    model ctr [N] float32 (its pCTR; `probs` are then its pCVR).
    """

    views: tuple[str, ...]
    labels: tuple[str, ...]
    probs: np.ndarray
    weights: np.ndarray
    user: np.ndarray
    target_action: np.ndarray | None = None
    days: tuple[str, ...] = ()
    day_rows: tuple[int, ...] = ()
    click: np.ndarray | None = None
    ctr: np.ndarray | None = None

    def save(self, path: Path) -> None:
        extra = {} if self.target_action is None else {"target_action": self.target_action}
        if self.days:
            extra |= {"days": np.array(self.days), "day_rows": np.array(self.day_rows)}
        extra |= {k: getattr(self, k) for k in IMPRESSION_ARRAYS if getattr(self, k) is not None}

        def write(tmp: Path) -> None:
            with tmp.open("wb") as f:
                np.savez(f, views=np.array(self.views), labels=np.array(self.labels),
                         probs=self.probs, weights=self.weights, user=self.user, **extra)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> Predictions:
        """The predictions saved at `path`; a damaged or inconsistent file raises a
        `ConfigError` (numpy reads it with pickle disabled: it is data)."""
        if not path.is_file():
            raise ConfigError(f"no predictions at {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                days = tuple(str(d) for d in f["days"].tolist()) if "days" in f.files else ()
                rows = tuple(int(n) for n in f["day_rows"]) if days else ()
                loaded = cls(views=tuple(str(v) for v in f["views"].tolist()),
                             labels=tuple(str(v) for v in f["labels"].tolist()),
                             probs=f["probs"], weights=f["weights"], user=f["user"],
                             target_action=f["target_action"] if "target_action" in f.files
                             else None, days=days, day_rows=rows,
                             **{k: f[k] for k in IMPRESSION_ARRAYS if k in f.files})
            loaded._check_shapes()
        except OSError as exc:  # the file may be fine, its access is not
            raise file_error(exc, path) from exc
        except (ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise ConfigError(f"{path} is damaged ({exc}); recompute it with malt eval --run "
                              f"{path.parent} --data DIR") from None
        return loaded

    def _check_shapes(self) -> None:
        rows = len(self.user)
        if self.probs.shape != (rows, len(self.views)) or \
                self.weights.shape != (rows, len(self.labels)) or self.user.ndim != 1 or \
                (self.target_action is not None and self.target_action.shape != (rows,)) or \
                sum(self.day_rows) not in (0, rows) or len(self.day_rows) != len(self.days) or \
                any(getattr(self, k) is not None and getattr(self, k).shape != (rows,)
                    for k in IMPRESSION_ARRAYS) or (self.ctr is not None and self.click is None):
            raise ValueError("its arrays do not fit together")
        if not all(np.issubdtype(a.dtype, np.number) for a in (self.probs, self.weights,
                                                                  self.user)):
            raise ValueError("its scores are not numbers")

    def by_day(self) -> list[tuple[str, Predictions]]:
        """(day, the predictions of its rows) for every evaluation day, in order."""
        out, start = [], 0
        for day, rows in zip(self.days, self.day_rows):
            out.append((day, self.rows(slice(start, start + rows), days=(day,),
                                       day_rows=(rows,))))
            start += rows
        return out

    def rows(self, take: slice | np.ndarray, *, days: tuple[str, ...] = (),
             day_rows: tuple[int, ...] = ()) -> Predictions:
        """The predictions of the rows `take` selects (a slice or a boolean mask [N]), of
        `days` and `day_rows` (none: the rows no longer make whole days)."""

        def part(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[take]

        return Predictions(views=self.views, labels=self.labels, probs=self.probs[take],
                           weights=self.weights[take], user=self.user[take],
                           target_action=part(self.target_action), days=days,
                           day_rows=day_rows, click=part(self.click), ctr=part(self.ctr))

    def clicked(self) -> Predictions:
        """The clicked rows: all of them, unless these are impression logs (where a model's
        conversion rate is scored on its clicks, as ESMM scores CVR)."""
        return self if self.click is None else self.rows(self.click > 0)

    def view(self, name: str) -> np.ndarray:
        return self.probs[:, self.views.index(name)]

    def label_weights(self, name: str) -> np.ndarray:
        return self.weights[:, self.labels.index(name)]

    def same_rows(self, other: Predictions, view: str | None = None) -> bool:
        """Whether `other` scored the same rows: the same users in the same order, the same
        clicks and, for `view`, the same positives (what pairing two runs row by row needs)."""
        same_clicks = (self.click is None) == (other.click is None) and (
            self.click is None or np.array_equal(self.click, other.click))
        return same_clicks and np.array_equal(self.user, other.user) and (
            view is None or np.array_equal(self.label_weights(view) > 0,
                                           other.label_weights(view) > 0))


IMPRESSION_ARRAYS = ("click", "ctr")
"""The optional arrays of impression logs, saved under these names."""


@torch.no_grad()
def score_days(model: MaltModel, days: list[Day], task: Task, schema: Schema, *,
               batch_size: int, device: torch.device, world: World = World(),
               precision: str = "fp32") -> Predictions | None:
    """Score `days` (each rank its shard), the forward passes in `precision`
    (`malt.precision`); the gathered result on rank 0, None on the others."""
    model.eval()
    views = task.label_views
    parts: dict[str, list[np.ndarray]] = {"probs": [], "weights": [], "user": [], "order": []}
    if schema.target_action_column:
        parts["target_action"] = []
    entire_space = isinstance(model, EntireSpace)
    if schema.click_column:
        parts["click"] = []
    if entire_space:
        parts["ctr"] = []
    offset = 0
    for day in days:
        for batch in DayBatches(day, batch_size, rank=world.rank, world_size=world.size,
                                device=device):
            if batch["labels"].shape[0] == 0:
                continue
            with autocast(precision, device):
                if entire_space:
                    ctr, probs = model.impression_probabilities(batch)
                    parts["ctr"].append(ctr.float().cpu().numpy())
                else:
                    probs = model.probabilities(batch)
            if "click" in parts:
                parts["click"].append(batch["click"].cpu().numpy())
            parts["probs"].append(torch.stack([probs[v].float() for v in views], 1).cpu().numpy())
            parts["weights"].append(batch["weights"].cpu().numpy())
            parts["user"].append(batch["user"].cpu().numpy())
            parts["order"].append(batch["index"].cpu().numpy() + offset)
            if "target_action" in parts:
                parts["target_action"].append(batch["target_action"].cpu().numpy())
        offset += day.rows
    local = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    gathered = gather_arrays(local, world)
    if gathered is None:
        return None
    order = np.argsort(gathered["order"], kind="stable")
    target = gathered["target_action"][order].astype(np.int64) \
        if "target_action" in gathered else None
    impressions = {k: gathered[k][order].astype(np.float32) for k in IMPRESSION_ARRAYS
                   if k in gathered}
    return Predictions(views=views, labels=schema.labels,
                       probs=gathered["probs"][order].astype(np.float32),
                       weights=gathered["weights"][order].astype(np.float32),
                       user=gathered["user"][order].astype(np.int64), target_action=target,
                       days=tuple(d.name for d in days), day_rows=tuple(d.rows for d in days),
                       **impressions)
