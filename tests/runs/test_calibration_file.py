"""A run's calibration file: data that loads back into the same maps, and a clear error for a
damaged one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from malt.errors import ConfigError
from malt.eval.calibrate import fit_isotonic, fit_platt, fit_temperature
from malt.runs.calibration import Calibration, Isotonic, Platt, Temperature, load_calibration


def fitted(method: str) -> Calibration:
    rng = np.random.default_rng(3)
    p = rng.random(500).astype(np.float32)
    fits = {"isotonic": fit_isotonic, "platt": fit_platt, "temperature": fit_temperature}
    views = {v: fits[method](p, rng.random(500) < p ** k) for k, v in enumerate(("a", "b"), 1)}
    return Calibration(method, views, ("day-1", "day-2"), 500)


@pytest.mark.parametrize("method", ["isotonic", "platt", "temperature"])
def test_a_saved_calibration_loads_back_and_gives_identical_outputs(method, tmp_path):
    calibration = fitted(method)
    path = tmp_path / "calibration.json"
    path.write_text(calibration.to_json())
    loaded = load_calibration(path)
    assert loaded == calibration
    probs = np.random.default_rng(4).random((300, 2)).astype(np.float32)
    assert np.array_equal(loaded.apply_all(("a", "b"), probs),
                          calibration.apply_all(("a", "b"), probs))
    assert json.loads(path.read_text())["method"] == method


def test_a_sliced_calibration_loads_back_and_gives_identical_outputs(tmp_path):
    calibration = Calibration("platt", {"a": Platt(1.0, -1.0)}, ("d",), 10, by="target_action",
                              labels=("x", "y"), slices={"a": {"y": Platt(0.5, 0.2)}})
    path = tmp_path / "calibration.json"
    path.write_text(calibration.to_json())
    loaded = load_calibration(path)
    assert loaded == calibration
    probs = np.float32([0.1, 0.5, 0.9])
    key = np.array([1, 0, -1])
    assert np.array_equal(loaded.apply("a", probs, key), calibration.apply("a", probs, key))
    with pytest.raises(ValueError, match="not among the labels"):
        Calibration("platt", {"a": Platt(1.0, 0.0)}, (), 0, by="target_action", labels=("x",),
                    slices={"a": {"z": Platt(1.0, 0.0)}})


def test_no_file_is_no_calibration(tmp_path):
    assert load_calibration(tmp_path / "calibration.json") is None


@pytest.mark.parametrize("text", [
    "{not json", "[1, 2]", '{"method": "platt"}',
    '{"malt_calibration": 1, "method": "magic", "days": [], "rows": 1, "views": {}}',
    '{"malt_calibration": 1, "method": "platt", "days": [], "rows": 1, '
    '"views": {"a": {"slope": -1, "intercept": 0}}}',
    '{"malt_calibration": 1, "method": "isotonic", "days": [], "rows": 1, '
    '"views": {"a": {"x": [0.5, 0.2], "y": [0.1, 0.2]}}}',
    '{"malt_calibration": 1, "method": "temperature", "days": [], "rows": -3, '
    '"views": {"a": {"temperature": 1.0}}}',
    '{"malt_calibration": 1, "method": "platt", "days": [], "rows": 1, "by": "campaign", '
    '"views": {"a": {"slope": 1, "intercept": 0}}}',
    '{"malt_calibration": 1, "method": "platt", "days": [], "rows": 1, "by": "target_action", '
    '"labels": ["x"], "slices": {"a": {"q": {"slope": 1, "intercept": 0}}}, '
    '"views": {"a": {"slope": 1, "intercept": 0}}}',
])
def test_a_damaged_file_is_a_config_error_that_says_how_to_fix_it(text, tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="damaged.*malt calibrate"):
        load_calibration(path)


def test_a_calibration_must_cover_every_view_of_the_model():
    calibration = Calibration("temperature", {"a": Temperature(2.0)}, (), 0)
    calibration.check_views(("a",), "x")
    with pytest.raises(ConfigError, match=r"no calibrator for view\(s\) \['b'\]"):
        calibration.check_views(("a", "b"), "x")


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError):
        Isotonic((0.1, 0.1), (0.2, 0.3))
    with pytest.raises(ValueError):
        Isotonic((0.1, 0.2), (0.3, 0.2))
    with pytest.raises(ValueError):
        Platt(float("nan"), 0.0)
    with pytest.raises(ValueError):
        Temperature(0.0)
