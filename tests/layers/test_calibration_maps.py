"""The calibration maps: the interpolation scikit-learn's isotonic predict does, the logit
affine map by hand, the same numbers from ONNX Runtime, and monotone within [0, 1]."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from malt.layers.calibration import LogitAffine, PiecewiseLinear, SlicedMap, logit

X = np.array([0.05, 0.2, 0.5, 0.9])
Y = np.array([0.01, 0.1, 0.1, 0.7])


def apply(module: torch.nn.Module, p: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(p.astype(np.float32))).numpy()


def test_the_piecewise_linear_map_interpolates_and_clips_as_np_interp():
    p = np.array([0.0, 0.04, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 0.95, 1.0], dtype=np.float32)
    expected = np.interp(p.astype(np.float64), X, Y)
    assert np.allclose(apply(PiecewiseLinear(torch.tensor(X), torch.tensor(Y)), p), expected,
                       atol=1e-7)
    # by hand: halfway between 0.2 and 0.5 stays 0.1; 0.7 is halfway from 0.1 to 0.7
    assert apply(PiecewiseLinear(torch.tensor(X), torch.tensor(Y)), np.array([0.7]))[0] == \
        pytest.approx(0.4, abs=1e-7)


def test_it_computes_what_sklearn_isotonic_predicts():
    rng = np.random.default_rng(0)
    # Scores are float32 (a model's), so the breakpoints are exact in the float32 module.
    p = rng.beta(1, 8, 3000).astype(np.float32).astype(np.float64)
    y = (rng.random(3000) < np.sqrt(p)).astype(float)
    fit = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    module = PiecewiseLinear(torch.tensor(fit.X_thresholds_), torch.tensor(fit.y_thresholds_))
    grid = np.concatenate([rng.random(2000), [0.0, 1.0, p.min(), p.max()]]).astype(np.float32)
    assert np.abs(apply(module, grid) - fit.predict(grid.astype(np.float64))).max() < 1e-6


def test_the_logit_affine_map_is_sigmoid_of_a_logit_plus_b():
    p = np.array([0.1, 0.5, 0.8], dtype=np.float32)
    z = np.log(p / (1 - p))
    expected = 1 / (1 + np.exp(-(2.0 * z - 0.5)))
    assert np.allclose(apply(LogitAffine(2.0, -0.5), p), expected, atol=1e-6)
    # the ends are clamped before the logit: finite, and still ordered
    ends = apply(LogitAffine(1.0, 0.0), np.array([0.0, 1.0]))
    assert np.all(np.isfinite(ends)) and ends[0] < 1e-6 and ends[1] > 1 - 1e-6
    assert torch.isfinite(logit(torch.tensor([0.0, 1.0]))).all()


def test_the_breakpoints_must_be_two_matching_vectors():
    with pytest.raises(ValueError, match="at least 2"):
        PiecewiseLinear(torch.tensor([0.5]), torch.tensor([0.5]))
    with pytest.raises(ValueError):
        PiecewiseLinear(torch.tensor([0.1, 0.5]), torch.tensor([0.5]))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based exporter
@pytest.mark.parametrize("module", [PiecewiseLinear(torch.tensor(X), torch.tensor(Y)),
                                    LogitAffine(0.8, 0.3)], ids=["isotonic", "logit-affine"])
def test_onnx_runtime_computes_the_same_map(module):
    buffer = io.BytesIO()
    torch.onnx.export(module.eval(), (torch.rand(3),), buffer, input_names=["p"],
                      output_names=["q"], dynamic_axes={"p": {0: "b"}, "q": {0: "b"}},
                      opset_version=17, dynamo=False)
    session = onnxruntime.InferenceSession(buffer.getvalue(),
                                           providers=["CPUExecutionProvider"])
    p = np.random.default_rng(1).random(500).astype(np.float32)
    p[:4] = [0.0, 1.0, 0.05, 0.9]  # the ends and two breakpoints
    (served,) = session.run(None, {"p": p})
    assert served.shape == (500,)
    assert np.abs(served - apply(module, p)).max() < 1e-6


unit = st.floats(0, 1, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(unit, min_size=2, max_size=12, unique=True),
       ys=st.lists(unit, min_size=12, max_size=12),
       probes=st.lists(unit, min_size=1, max_size=50))
def test_a_non_decreasing_map_stays_non_decreasing_and_in_the_unit_interval(xs, ys, probes):
    x = np.sort(np.array(xs, dtype=np.float32))
    y = np.sort(np.array(ys[:len(x)], dtype=np.float32))
    p = np.sort(np.array(probes + xs, dtype=np.float32))
    out = apply(PiecewiseLinear(torch.from_numpy(x), torch.from_numpy(y)), p)
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1


@settings(max_examples=60, deadline=None)
@given(slope=st.floats(0, 20), intercept=st.floats(-10, 10),
       probes=st.lists(unit, min_size=1, max_size=50))
def test_a_non_negative_slope_keeps_the_logit_map_monotone_and_in_the_unit_interval(
        slope, intercept, probes):
    out = apply(LogitAffine(slope, intercept), np.sort(np.array(probes, dtype=np.float32)))
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1


def sliced() -> SlicedMap:
    """Key 0 and key 2 have maps of their own; key 1, -1 and keys beyond 3 take the pooled."""
    return SlicedMap(LogitAffine(1.0, 0.0), {2: LogitAffine(1.0, 1.0),
                                             0: PiecewiseLinear(torch.tensor(X),
                                                                torch.tensor(Y))}, keys=3)


def test_a_sliced_map_applies_each_keys_map_and_the_pooled_one_to_the_rest():
    p = torch.full((6,), 0.7)
    key = torch.tensor([0, 1, 2, -1, 3, 99])
    with torch.no_grad():
        out = sliced()(p, key).numpy()
    z = np.log(0.7 / 0.3)
    assert np.allclose(out, [0.4, 0.7, 1 / (1 + np.exp(-(z + 1))), 0.7, 0.7, 0.7], atol=1e-6)
    with pytest.raises(ValueError, match="slice keys"):
        SlicedMap(LogitAffine(1.0), {3: LogitAffine(1.0)}, keys=3)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based exporter
def test_onnx_runtime_computes_the_same_sliced_map():
    buffer = io.BytesIO()
    module = sliced().eval()
    torch.onnx.export(module, (torch.rand(3), torch.zeros(3, dtype=torch.long)), buffer,
                      input_names=["p", "key"], output_names=["q"],
                      dynamic_axes={"p": {0: "b"}, "key": {0: "b"}, "q": {0: "b"}},
                      opset_version=17, dynamo=False)
    session = onnxruntime.InferenceSession(buffer.getvalue(),
                                           providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    p = rng.random(400).astype(np.float32)
    key = rng.integers(-2, 5, 400)
    (served,) = session.run(None, {"p": p, "key": key})
    with torch.no_grad():
        expected = module(torch.from_numpy(p), torch.from_numpy(key)).numpy()
    assert np.abs(served - expected).max() < 1e-6
