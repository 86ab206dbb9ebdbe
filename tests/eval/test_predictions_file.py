"""`predictions.npz` is read as data: a damaged, pickled or inconsistent file is refused."""

from __future__ import annotations

import numpy as np
import pytest

from malt.errors import ConfigError
from malt.eval.predictions import Predictions


def saved(tmp_path, **changes):
    arrays = {"views": np.array(["last", "first"]), "labels": np.array(["last", "first"]),
              "probs": np.full((4, 2), 0.5, np.float32), "weights": np.zeros((4, 2), np.float32),
              "user": np.arange(4), "days": np.array(["test"]), "day_rows": np.array([4])}
    arrays.update(changes)
    path = tmp_path / "predictions.npz"
    np.savez(path, **arrays)
    return path


def test_a_whole_file_loads(tmp_path):
    loaded = Predictions.load(saved(tmp_path))
    assert loaded.views == ("last", "first") and loaded.days == ("test",)
    assert loaded.probs.shape == (4, 2)


@pytest.mark.parametrize("changes", [
    {"probs": np.full((4, 3), 0.5)}, {"weights": np.zeros((3, 2))}, {"user": np.zeros((4, 1))},
    {"day_rows": np.array([5])}, {"probs": np.array([["a", "b"]] * 4)},
    {"user": np.array([object()] * 4, dtype=object)}])
def test_arrays_that_do_not_fit_together_are_refused(tmp_path, changes):
    with pytest.raises(ConfigError, match="is damaged"):
        Predictions.load(saved(tmp_path, **changes))


def test_a_truncated_file_is_refused(tmp_path):
    path = saved(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ConfigError, match="recompute it with malt eval"):
        Predictions.load(path)


def test_same_rows_needs_the_same_users_in_order_and_for_a_view_the_same_positives(tmp_path):
    run = Predictions.load(saved(tmp_path))
    one_more_last = np.zeros_like(run.weights)
    one_more_last[0, 0] = 1
    relabelled = Predictions(**{**run.__dict__, "weights": run.weights + one_more_last})
    reordered = Predictions(**{**run.__dict__, "user": run.user[::-1].copy()})
    assert run.same_rows(relabelled) and run.same_rows(relabelled, "first")
    assert not run.same_rows(relabelled, "last")
    assert not run.same_rows(reordered)
