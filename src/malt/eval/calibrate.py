"""Post-hoc calibration of a finished run: one probability map per predicted view, fitted on
held-out days after training, and the calibration metrics before and after it.

Three methods (`malt.runs.options.CalibrationMethod`), each fitted on the binarised labels
(weight > 0, as the metrics count them) smoothed as Platt proposed (below):

* isotonic: scikit-learn's `IsotonicRegression` (the pool-adjacent-violators fit), kept as its
  breakpoints; served by linear interpolation between them (`PiecewiseLinear`). On the smoothed
  targets a block of rows without a positive maps to 1 / (N₋ + 2), not 0: a calibrated
  probability is never exactly 0 or 1 (which would cost a positive there an unbounded loss).
* platt: sigmoid(a · logit(p) + b) fitted by Newton's method on the cross-entropy with Platt's
  smoothed targets (positives (N₊ + 1) / (N₊ + 2), negatives 1 / (N₋ + 2)): the targets lie
  strictly inside (0, 1), so the minimum is finite even when the scores separate the labels.
  The slope is kept >= 0 (a calibrator never reverses the ranking): the convex loss's minimum
  over a >= 0 lies at a = 0 when the free one does not.
* temperature: sigmoid(logit(p) / T), the same loss and targets, one parameter.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from malt.data.cache import prepare
from malt.errors import ConfigError, DataError
from malt.eval.predictions import Predictions, score_days
from malt.eval.report import evaluate
from malt.layers.calibration import PROBABILITY_EPS
from malt.metrics import ViewMetrics
from malt.runs.calibration import Calibration, Calibrator, Isotonic, Platt, Temperature
from malt.runs.load import TrainedModel
from malt.runs.options import CALIBRATION_METHODS, CalibrationMethod, CalibrationSlices
from malt.training.builder import training_days
from malt.training.distributed import device_for, resolve_device

MIN_SLICE_ROWS = 30
"""Positives and negatives a slice needs for a calibrator of its own."""
NEWTON_STEPS = 100
NEWTON_TOLERANCE = 1e-12
"""Newton's method stops when no parameter moves by more than this."""


def isotonic_regression() -> type:
    """scikit-learn's `IsotonicRegression`, or a `ConfigError` that says what to install."""
    try:
        from sklearn.isotonic import IsotonicRegression
    except ImportError as exc:
        raise ConfigError("isotonic calibration needs scikit-learn: pip install "
                          "'malt[calibrate]' (or use --method platt or temperature)") from exc
    return IsotonicRegression


def check_method(method: str) -> None:
    """Refuse an unknown method, or isotonic without scikit-learn, before any work."""
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"unknown calibration method '{method}', expected one of "
                          f"{list(CALIBRATION_METHODS)}")
    if method == "isotonic":
        isotonic_regression()


def fit_isotonic(probs: np.ndarray, labels: np.ndarray) -> Isotonic:
    """Isotonic regression of the smoothed targets of 0/1 `labels` [N] on `probs` [N]
    (scikit-learn), as breakpoints."""
    fit = isotonic_regression()(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    fit.fit(np.asarray(probs, dtype=np.float64), platt_targets(labels))
    x, y = fit.X_thresholds_.tolist(), np.clip(fit.y_thresholds_, 0.0, 1.0).tolist()
    if len(x) == 1:  # one distinct score: a constant map, kept as a flat segment
        x, y = [x[0], x[0] + 1.0], [y[0], y[0]]
    return Isotonic(tuple(x), tuple(y))


def platt_targets(labels: np.ndarray) -> np.ndarray:
    """Platt's smoothed targets [N] of 0/1 `labels` [N]."""
    y = np.asarray(labels, dtype=np.float64)
    positives = y.sum()
    negatives = len(y) - positives
    return np.where(y > 0, (positives + 1) / (positives + 2), 1 / (negatives + 2))


def logit64(probs: np.ndarray) -> np.ndarray:
    """The logit the served calibrators take (`malt.layers.calibration.logit`), in float64."""
    p = np.clip(np.asarray(probs, dtype=np.float32), PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    p = p.astype(np.float64)
    return np.log(p) - np.log1p(-p)


def fit_platt(probs: np.ndarray, labels: np.ndarray) -> Platt:
    """Platt scaling of `probs` [N] against 0/1 `labels` [N] (see the module docstring)."""
    z, t = logit64(probs), platt_targets(labels)
    slope, intercept = _newton(np.stack([z, np.ones_like(z)], 1), t, np.array([1.0, 0.0]))
    if slope < 0:
        slope, intercept = 0.0, float(np.log(t.mean()) - np.log1p(-t.mean()))
    return Platt(float(slope), float(intercept))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> Temperature:
    """Temperature scaling of `probs` [N] against 0/1 `labels` [N]; refused when no T > 0
    fits better than flattening every score to 0.5: scores on the wrong side of 0.5 for their
    labels (or ranking them backwards), which a map without an intercept cannot move."""
    z, t = logit64(probs), platt_targets(labels)
    refusal = DataError("temperature scaling cannot calibrate these scores: every T > 0 fits "
                        "worse than flattening them all to 0.5 (they lie on the wrong side of "
                        "0.5 for their labels, rank them backwards or not at all, and the map "
                        "has no intercept to move them); use --method platt or isotonic")
    if np.dot(0.5 - t, z) >= 0:  # the loss's slope at 1/T = 0: it only grows for 1/T > 0
        raise refusal
    (inverse,) = _newton(z[:, None], t, np.array([1.0]))
    # A slope that only rounding made negative (scores all alike) leaves the optimum at 1/T = 0.
    temperature = 1.0 / float(inverse) if inverse > 0 else math.inf
    if not math.isfinite(temperature):
        raise refusal
    return Temperature(temperature)


def _newton(features: np.ndarray, targets: np.ndarray, start: np.ndarray) -> np.ndarray:
    """θ minimising the mean cross-entropy of sigmoid(features @ θ) [N] against `targets` [N]
    (features [N, D]): Newton steps, each halved until the loss does not grow."""
    theta = start.astype(np.float64)
    loss = _cross_entropy(features @ theta, targets)
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(features @ theta)
        gradient = features.T @ (p - targets) / len(targets)
        hessian = (features * (p * (1 - p))[:, None]).T @ features / len(targets)
        # A tiny ridge keeps the step defined when the features are (nearly) collinear.
        step = np.linalg.solve(hessian + 1e-12 * np.eye(len(theta)), gradient)
        for _ in range(50):
            candidate = theta - step
            new_loss = _cross_entropy(features @ candidate, targets)
            if new_loss <= loss:
                break
            step = step / 2
        else:
            break
        theta, loss = candidate, new_loss
        if np.max(np.abs(step)) < NEWTON_TOLERANCE:
            break
    return theta


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _cross_entropy(z: np.ndarray, targets: np.ndarray) -> float:
    """Mean of −t·log σ(z) − (1 − t)·log(1 − σ(z)), computed stably from the logits z."""
    return float(np.mean(np.logaddexp(0.0, z) - targets * z))


FITS = {"isotonic": fit_isotonic, "platt": fit_platt, "temperature": fit_temperature}


def fit_calibration(predictions: Predictions, method: CalibrationMethod,
                    by: CalibrationSlices | None = None) -> Calibration:
    """One calibrator per view of `predictions`, fitted on its rows (its clicked rows, on
    impression logs: a conversion rate is calibrated where conversions are observed); with
    `by`, also one per view and target action that has `MIN_SLICE_ROWS` positives and negatives
    (and that the method can fit: a temperature refused on a slice leaves it to the pooled
    calibrator)."""
    check_method(method)
    predictions = predictions.clicked()
    views: dict[str, Calibrator] = {}
    for view in predictions.views:
        labels = predictions.label_weights(view) > 0
        if labels.all() or not labels.any():
            raise DataError(f"view '{view}' has {'no negative' if labels.all() else 'no positive'}"
                            f" among the {len(labels):,} rows of the calibration days "
                            f"({', '.join(predictions.days)}): nothing to calibrate against; "
                            "use more days (--days)")
        views[view] = FITS[method](predictions.view(view), labels)
    pooled = Calibration(method=method, views=views, days=predictions.days,
                         rows=len(predictions.user))
    if by is None:
        return pooled
    if predictions.target_action is None:
        raise ConfigError("--by target_action needs data with a target-action column "
                          "(target_action_column in the schema)")
    slices = {view: _fit_slices(predictions, view, method) for view in predictions.views}
    return dataclasses.replace(pooled, by=by, labels=predictions.labels, slices=slices)


def _fit_slices(predictions: Predictions, view: str, method: CalibrationMethod
                ) -> dict[str, Calibrator]:
    """Target action -> the view's calibrator on its rows, for the actions with enough."""
    assert predictions.target_action is not None
    labels = predictions.label_weights(view) > 0
    fitted: dict[str, Calibrator] = {}
    for index, action in enumerate(predictions.labels):
        rows = predictions.target_action == index
        positives = int(np.count_nonzero(labels[rows]))
        if min(positives, int(rows.sum()) - positives) < MIN_SLICE_ROWS:
            continue
        try:
            fitted[action] = FITS[method](predictions.view(view)[rows], labels[rows])
        except DataError:
            continue
    return fitted


@dataclass(frozen=True)
class CalibrationDays:
    """The days calibrators are fitted on, and whether training saw them."""

    names: tuple[str, ...]
    held_out: bool


def score_calibration_days(trained: TrainedModel, days: int | None = None, *,
                           device: str = "auto") -> tuple[Predictions, CalibrationDays]:
    """The run's predictions on its last `days` training days (default: the config's
    `validation_days`); they were held out from training when the run used the validation
    protocol and `days` is at most its validation days."""
    config = trained.config
    if config.data.path is None:
        raise ConfigError("the run's config names no data set to calibrate on")
    dataset = prepare(config.data.path, trained.schema)
    available = training_days(dataset, config.data)
    count = config.data.validation_days if days is None else days
    if count > len(available):
        raise ConfigError(f"--days {count}: the run's data has {len(available)} training days")
    chosen = available[-count:]
    torch_device = device_for(resolve_device(device))
    predictions = score_days(trained.model.to(torch_device), chosen, trained.task,
                             trained.schema, batch_size=config.train.batch_size,
                             device=torch_device)
    trained.model.cpu()
    assert predictions is not None  # one process: rank 0
    held_out = config.data.eval_split == "validation" and count <= config.data.validation_days
    return predictions, CalibrationDays(tuple(d.name for d in chosen), held_out)


def calibrate_run(trained: TrainedModel, method: CalibrationMethod, days: int | None = None, *,
                  by: CalibrationSlices | None = None, device: str = "auto"
                  ) -> tuple[Calibration, CalibrationDays]:
    """Fit `method`'s calibrators of the run's views (per target action too, with `by`) on
    its calibration days (`score_calibration_days`) and save them in the run, under its lock,
    replacing earlier ones; everything that can fail is done before the run is touched."""
    check_method(method)
    if by is not None and not trained.schema.target_action_column:
        raise ConfigError(f"--by {by} needs data with a target-action column; the run's "
                          "schema has none")
    predictions, chosen = score_calibration_days(trained, days, device=device)
    calibration = fit_calibration(predictions, method, by)
    with trained.run.output.writing():
        trained.run.save_calibration(calibration)
    return calibration, chosen


def calibrated(predictions: Predictions, calibration: Calibration) -> Predictions:
    """`predictions` with every view's probabilities through its calibrator."""
    probs = calibration.apply_all(predictions.views, predictions.probs,
                                  predictions.target_action)
    return dataclasses.replace(predictions, probs=probs)


def calibration_effect(predictions: Predictions, calibration: Calibration
                       ) -> tuple[dict[str, ViewMetrics], dict[str, ViewMetrics]]:
    """(metrics before, metrics after) calibration of `predictions`."""
    return evaluate(predictions), evaluate(calibrated(predictions, calibration))


def format_calibration_effect(before: dict[str, ViewMetrics], after: dict[str, ViewMetrics],
                              calibration: Calibration, main: str, evaluated_days: tuple[str, ...]
                              ) -> str:
    """Logloss, PCOC and ECE of every view before and after its calibrator, main view first;
    a note when the evaluated days are among those the calibrators were fitted on."""
    sliced = "" if calibration.by is None else \
        f" per target action ({_slice_counts(calibration)})"
    lines = [f"calibration ({calibration.method}{sliced}, fitted on "
             f"{', '.join(calibration.days)}, {calibration.rows:,} rows):",
             f"{'view':<10}{'logloss':>10}{'→ after':>10}{'PCOC':>8}{'→ after':>9}"
             f"{'ECE':>9}{'→ after':>10}"]
    for view in sorted(before, key=lambda v: v != main):
        b, a = before[view], after[view]
        name = f"{view}*" if view == main else view
        lines.append(f"{name:<10}{b.logloss:>10.4f}{a.logloss:>10.4f}{b.pcoc:>8.3f}"
                     f"{a.pcoc:>9.3f}{b.ece:>9.5f}{a.ece:>10.5f}")
    overlap = sorted(set(calibration.days) & set(evaluated_days))
    if overlap:
        lines.append(f"note: the calibrators were fitted on {', '.join(overlap)}, which is "
                     "evaluated here: the numbers after calibration are in-sample (optimistic)")
    return "\n".join(lines)


def _slice_counts(calibration: Calibration) -> str:
    """How many target actions have calibrators of their own, per view."""
    counts = {v: len(calibration.slices.get(v, {})) for v in calibration.views}
    return "own calibrators: " + ", ".join(f"{v} {n}" for v, n in counts.items()) + \
        f" of {len(calibration.labels)}; the rest pooled"
