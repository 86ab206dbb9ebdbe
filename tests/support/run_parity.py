"""The check that a distributed run trained and scored as one process did
(`support.run_parity`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from malt.eval.predictions import Predictions
from malt.runs.record import RunMetrics

TOLERANCE = 1e-6
"""Measured agreement is 6e-8; a missing per-rank rescale of an uneven last step (23/22 rows)
moves the metrics by 1e-4 or more."""


def assert_same_run(distributed: Path, single: Path, world_size: int) -> None:
    """`distributed` (a run directory) has `world_size` ranks and the metrics and predictions
    of the one-process run in `single` within `TOLERANCE`."""
    ddp = RunMetrics.from_dict(json.loads((distributed / "metrics.json").read_text()))
    one = RunMetrics.from_dict(json.loads((single / "metrics.json").read_text()))
    assert ddp.train.world_size == world_size
    for view, values in one.views.items():
        for name in ("auc", "gauc", "logloss"):
            assert getattr(ddp.views[view], name) == pytest.approx(getattr(values, name),
                                                                   abs=TOLERANCE)
    np.testing.assert_allclose(Predictions.load(distributed / "predictions.npz").probs,
                               Predictions.load(single / "predictions.npz").probs,
                               atol=TOLERANCE, rtol=0)
