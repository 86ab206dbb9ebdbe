"""A run's calibrators: one probability map per predicted view, fitted after training
(`malt.eval.calibrate`) and saved in the run as data, `calibration.json`:

    {"malt_calibration": 1, "method": "isotonic", "days": ["day-27"], "rows": 51234,
     "views": {"last": {"x": [...], "y": [...]}, ...}}        isotonic: breakpoints
              {"last": {"slope": 0.93, "intercept": -0.21}}   platt
              {"last": {"temperature": 1.12}}                  temperature

Every consumer applies them through the same torch modules (`malt.layers.calibration`): the
eval's numbers, `malt predict`, the Python API and the graphs `malt export` writes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from malt.errors import ConfigError, file_error
from malt.layers.calibration import LogitAffine, PiecewiseLinear, SlicedMap
from malt.runs.options import CALIBRATION_METHODS, CalibrationMethod, CalibrationSlices

FORMAT_KEY = "malt_calibration"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Isotonic:
    """Breakpoints of a non-decreasing piecewise-linear map: x strictly increasing, y
    non-decreasing within [0, 1], at least two of each."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x, dtype=np.float64), np.asarray(self.y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 2 or not np.all(np.isfinite(x)) or \
                np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0) or \
                not np.all((y >= 0) & (y <= 1)):
            raise ValueError("isotonic breakpoints need x strictly increasing and y "
                             "non-decreasing in [0, 1], at least two")

    def module(self) -> nn.Module:
        return PiecewiseLinear(torch.tensor(self.x), torch.tensor(self.y))

    def to_dict(self) -> dict[str, Any]:
        return {"x": list(self.x), "y": list(self.y)}


@dataclass(frozen=True)
class Platt:
    """sigmoid(slope · logit(p) + intercept), slope >= 0."""

    slope: float
    intercept: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.slope) and math.isfinite(self.intercept)) or self.slope < 0:
            raise ValueError("Platt scaling needs a finite slope >= 0 and a finite intercept")

    def module(self) -> nn.Module:
        return LogitAffine(self.slope, self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return {"slope": self.slope, "intercept": self.intercept}


@dataclass(frozen=True)
class Temperature:
    """sigmoid(logit(p) / temperature), temperature > 0."""

    temperature: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError("temperature scaling needs a finite temperature > 0")

    def module(self) -> nn.Module:
        return LogitAffine(1.0 / self.temperature)

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


Calibrator = Isotonic | Platt | Temperature
CALIBRATORS: dict[str, type] = {"isotonic": Isotonic, "platt": Platt,
                                "temperature": Temperature}


@dataclass(frozen=True)
class Calibration:
    """The calibrators of a run's views, all of one method, and the days they were fitted on
    (with their row count).

    Sliced by target action (`by`), a view also has a calibrator per target action that had
    enough rows (`slices[view][label]`); the rows of any other target action take the pooled
    one (`views[view]`). `labels` are the data's labels, whose index the target action is.
    """

    method: CalibrationMethod
    views: dict[str, Calibrator]
    days: tuple[str, ...]
    rows: int
    by: CalibrationSlices | None = None
    labels: tuple[str, ...] = ()
    slices: dict[str, dict[str, Calibrator]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = {name for per_view in self.slices.values() for name in per_view} - \
            set(self.labels)
        if unknown or (self.slices and self.by is None):
            raise ValueError(f"slices {sorted(unknown)} are not among the labels "
                             f"{list(self.labels)}" if unknown else "slices without `by`")

    def module(self, view: str) -> nn.Module:
        """The view's calibrator as a torch module: probability [B] -> [B], or, sliced,
        (probability [B], target action [B]) -> [B]."""
        pooled = self.views[view].module()
        if self.by is None:
            return pooled
        return SlicedMap(pooled, {self.labels.index(name): c.module()
                                  for name, c in self.slices.get(view, {}).items()},
                         len(self.labels))

    @torch.no_grad()
    def apply(self, view: str, probs: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        """The view's calibrated probabilities [N] float32 of `probs` [N] (computed by the same
        module as the exported graphs); sliced, `key` [N] is the rows' target action."""
        p = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))
        if self.by is None:
            return self.module(view)(p).numpy()
        if key is None:
            raise ConfigError(f"the calibration is sliced by {self.by}: the rows need theirs")
        k = torch.from_numpy(np.ascontiguousarray(key, dtype=np.int64))
        return self.module(view)(p, k).numpy()

    def apply_all(self, views: tuple[str, ...], probs: np.ndarray,
                  key: np.ndarray | None = None) -> np.ndarray:
        """probs [N, V] (columns = `views`) calibrated column by column; [N, V] float32."""
        if probs.shape[1:] != (len(views),):
            raise ValueError(f"probs of shape {probs.shape} for {len(views)} views")
        columns = [self.apply(v, probs[:, j], key) for j, v in enumerate(views)]
        return np.stack(columns, 1) if columns else probs.astype(np.float32)

    def check_views(self, views: tuple[str, ...], source: str) -> None:
        """Refuse a calibration that lacks one of the model's `views`."""
        missing = [v for v in views if v not in self.views]
        if missing:
            raise ConfigError(f"{source} has no calibrator for view(s) {missing}; calibrate "
                              "the run again (malt calibrate)")

    def to_dict(self) -> dict[str, Any]:
        tree = {FORMAT_KEY: FORMAT_VERSION, "method": self.method, "days": list(self.days),
                "rows": self.rows, "views": {v: c.to_dict() for v, c in self.views.items()}}
        if self.by is not None:
            tree |= {"by": self.by, "labels": list(self.labels),
                     "slices": {v: {name: c.to_dict() for name, c in per_view.items()}
                                for v, per_view in self.slices.items()}}
        return tree

    @classmethod
    def from_dict(cls, tree: dict[str, Any], source: str = "calibration") -> Calibration:
        """The calibration a `to_dict` tree describes; anything else is a `ConfigError`
        naming `source`."""
        try:
            if tree.get(FORMAT_KEY) != FORMAT_VERSION:
                raise ValueError(f"not a calibration of format {FORMAT_VERSION}")
            method = tree["method"]
            if method not in CALIBRATION_METHODS:
                raise ValueError(f"unknown method {method!r}")
            kind = CALIBRATORS[method]
            views = {str(v): _calibrator(kind, params) for v, params in tree["views"].items()}
            days = tuple(str(d) for d in tree["days"])
            rows = tree["rows"]
            if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
                raise ValueError("rows is not a count")
            by = tree.get("by")
            if by not in (None, "target_action"):
                raise ValueError(f"unknown slicing {by!r}")
            labels = tuple(str(name) for name in tree.get("labels", ()))
            slices = {str(v): {str(name): _calibrator(kind, params)
                               for name, params in per_view.items()}
                      for v, per_view in tree.get("slices", {}).items()}
            return cls(method=method, views=views, days=days, rows=rows, by=by,
                       labels=labels, slices=slices)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{source} is damaged ({exc}); fit it again with malt calibrate"
                              ) from None

    def to_json(self) -> str:
        """The calibration as strict JSON text (what `load_calibration` reads)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def _calibrator(kind: type, params: Any) -> Calibrator:
    if not isinstance(params, dict):
        raise ValueError("a view's parameters are not a table")
    if kind is Isotonic:
        return Isotonic(tuple(float(v) for v in params["x"]),
                        tuple(float(v) for v in params["y"]))
    values = {k: float(params[k]) for k in ("slope", "intercept", "temperature") if k in params}
    return kind(**values)


def load_calibration(path: Path) -> Calibration | None:
    """The calibration saved at `path`; None when there is none."""
    if not path.is_file():
        return None
    try:
        tree = json.loads(path.read_text())
    except OSError as exc:
        raise file_error(exc, path) from exc
    except ValueError as exc:
        raise ConfigError(f"{path} is damaged ({exc}); fit it again with malt calibrate"
                          ) from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} is damaged (not a table); fit it again with malt calibrate")
    return Calibration.from_dict(tree, source=str(path))
