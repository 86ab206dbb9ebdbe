"""Predictions on the evaluation days and the evaluation report built from them.

Every label view with a head is scored (the main view and each auxiliary attribution; `cat` is
never evaluated). Metrics come in two flavours (see `malt.metrics`): binarised labels, as the
MAC paper reports them, and attribution-weighted positives (the paper's §3.3 definition).

Data with a target-action column (incomplete multi-label data, KAML) are also scored as the
KAML paper does: each row once, on its target action (see `malt.train.target_eval`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from malt.data.batches import DayBatches
from malt.data.cache import Day
from malt.data.schema import Schema
from malt.errors import ConfigError
from malt.metrics import (
    DEFAULT_COMPLEXITY_EDGES,
    ComplexityBreakdown,
    gauc,
    gauc_gain_by_complexity,
    path_complexity,
    view_metrics,
)
from malt.models.base import MaltModel
from malt.outputs import atomic_write
from malt.task import Task
from malt.train.distributed import World, gather_arrays


@dataclass
class Predictions:
    """Scores of the evaluated views on the evaluation rows, in day-file row order.

    probs [N, V] float32 (columns = `views`), weights [N, K] float32 raw weights of every schema
    label (columns = `labels`), user [N] int64, and target_action [N] int64 (label index, -1 =
    other) when the data has a target-action column.
    """

    views: tuple[str, ...]
    labels: tuple[str, ...]
    probs: np.ndarray
    weights: np.ndarray
    user: np.ndarray
    target_action: np.ndarray | None = None

    def save(self, path: Path) -> None:
        extra = {} if self.target_action is None else {"target_action": self.target_action}

        def write(tmp: Path) -> None:
            with tmp.open("wb") as f:
                np.savez(f, views=np.array(self.views), labels=np.array(self.labels),
                         probs=self.probs, weights=self.weights, user=self.user, **extra)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> Predictions:
        if not path.is_file():
            raise ConfigError(f"no predictions at {path}")
        with np.load(path) as f:
            return cls(views=tuple(f["views"].tolist()), labels=tuple(f["labels"].tolist()),
                       probs=f["probs"], weights=f["weights"], user=f["user"],
                       target_action=f["target_action"] if "target_action" in f.files else None)

    def view(self, name: str) -> np.ndarray:
        return self.probs[:, self.views.index(name)]

    def label_weights(self, name: str) -> np.ndarray:
        return self.weights[:, self.labels.index(name)]


@torch.no_grad()
def predict(model: MaltModel, days: list[Day], task: Task, schema: Schema, *,
            batch_size: int, device: torch.device, world: World = World()) -> Predictions | None:
    """Score `days` (each rank its shard); the gathered result on rank 0, None on the others."""
    model.eval()
    views = task.label_views
    parts: dict[str, list[np.ndarray]] = {"probs": [], "weights": [], "user": [], "order": []}
    if schema.target_action_column:
        parts["target_action"] = []
    offset = 0
    for day in days:
        for batch in DayBatches(day, batch_size, rank=world.rank, world_size=world.size,
                                device=device):
            if batch["labels"].shape[0] == 0:
                continue
            probs = model.predict(batch)
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
    return Predictions(views=views, labels=schema.labels,
                       probs=gathered["probs"][order].astype(np.float32),
                       weights=gathered["weights"][order].astype(np.float32),
                       user=gathered["user"][order].astype(np.int64), target_action=target)


def evaluate(predictions: Predictions) -> dict[str, dict[str, float]]:
    """View -> metrics (see `malt.metrics.view_metrics`)."""
    return {v: view_metrics(predictions.view(v), predictions.label_weights(v), predictions.user)
            for v in predictions.views}


def complexity_breakdown(run: Predictions, baseline: Predictions, view: str,
                         edges=DEFAULT_COMPLEXITY_EDGES) -> ComplexityBreakdown:
    """GAUC gain of `run` over `baseline` on `view` by user path complexity (linear/last
    positives per user, MAC paper Fig. 5); both must score the same rows."""
    for needed in ("linear", "last"):
        if needed not in run.labels:
            raise ConfigError(f"the path-complexity breakdown needs a '{needed}' label; the "
                              f"data has {list(run.labels)}")
    if run.user.shape != baseline.user.shape or not np.array_equal(run.user, baseline.user):
        raise ConfigError("the baseline run was evaluated on other rows; evaluate both on the "
                          "same data")
    labels = (run.label_weights(view) > 0).astype(np.float64)
    model_gauc = gauc(run.view(view), labels, run.user)
    base_gauc = gauc(baseline.view(view), labels, run.user)
    complexity = path_complexity(model_gauc.user_ids, run.user, run.label_weights("linear"),
                                 run.label_weights("last"))
    return gauc_gain_by_complexity(model_gauc, base_gauc, complexity, edges)


def format_metrics(metrics: dict[str, dict[str, float]], main: str) -> str:
    """A fixed-width table: one row per view, main view first."""
    header = f"{'view':<10}{'AUC':>9}{'GAUC':>9}{'AUC(w)':>9}{'GAUC(w)':>9}{'logloss':>10}" \
             f"{'users':>9}"
    lines = [header]
    for view in sorted(metrics, key=lambda v: v != main):
        m = metrics[view]
        name = f"{view}*" if view == main else view
        lines.append(f"{name:<10}{m['auc']:>9.4f}{m['gauc']:>9.4f}{m['auc_weighted']:>9.4f}"
                     f"{m['gauc_weighted']:>9.4f}{m['logloss']:>10.4f}{m['gauc_users']:>9,}")
    lines.append("* main view; (w): positives weighted by their attribution weight")
    return "\n".join(lines)


def format_breakdown(breakdown: ComplexityBreakdown) -> str:
    lines = [f"{'linear/last':<14}{'users':>8}{'clicks':>10}{'GAUC run':>10}{'GAUC base':>11}"
             f"{'gain (pt)':>11}"]
    for g in breakdown.groups:
        span = f"[{g.lo:g}, {g.hi:g})"
        lines.append(f"{span:<14}{g.users:>8,}{g.clicks:>10,}{g.gauc_model:>10.4f}"
                     f"{g.gauc_baseline:>11.4f}{100 * g.gain:>+11.2f}")
    lines.append(f"users outside the groups (no last-click positive): {breakdown.excluded_users:,}")
    return "\n".join(lines)
