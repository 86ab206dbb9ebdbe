"""The reliability diagram of one view, drawn with matplotlib's Agg canvas (no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from malt.metrics import CALIBRATION_BINS, expected_calibration_error, pcoc, reliability_bins
from malt.outputs import atomic_write

NO_POSITIVE_FLOOR = 1e-4
"""Bottom of the axes when no bin has a positive mean prediction or rate to scale them by."""


def reliability_figure(probs: np.ndarray, labels: np.ndarray, view: str,
                       bins: int = CALIBRATION_BINS):
    """Observed positive rate against mean prediction per equal-count bin
    (`malt.metrics.reliability_bins`), with the diagonal of perfect calibration; PCOC and ECE
    of the same rows in the title.

    The axes are log-log. Conversion-rate predictions crowd near 0 and still span orders of
    magnitude (0.1 % to tens of %), so on a linear axis most bins sit in its corner; on log axes
    every bin is apart from the others, and a bin's vertical distance from the diagonal is
    log(observed / predicted), its own over- or under-prediction ratio, read the same at every
    rate. A rate of 0 has no place on a log axis: a bin without positives is drawn as a
    downward triangle on the bottom edge (and a zero mean prediction on the left edge).

    Args:
        probs: [N] predicted P(y = 1) of the view, in [0, 1].
        labels: [N] 0/1 labels of the view.
        view: the view's name, for the title.
        bins: number of equal-count bins.
    Returns:
        a `matplotlib.figure.Figure`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curve = reliability_bins(probs, labels, bins)
    predicted, observed = curve.mean_predicted, curve.observed_rate
    values = np.r_[predicted, observed]
    positive = values[values > 0]
    low = positive.min() / 2 if len(positive) else NO_POSITIVE_FLOOR
    high = min(1.0, 2 * positive.max()) if len(positive) else 1.0
    x, y = np.maximum(predicted, low), np.maximum(observed, low)
    empty = observed == 0

    fig = Figure(figsize=(5.5, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([low, high], [low, high], "--", color="grey", linewidth=1, label="calibrated")
    ax.plot(x[~empty], y[~empty], "o-", color="tab:blue", linewidth=1, label="bin")
    if empty.any():
        ax.plot(x[empty], y[empty], "v", color="tab:red", clip_on=False,
                label="bin without positives")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel("mean prediction in bin")
    ax.set_ylabel("observed positive rate in bin")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"{view}: PCOC {pcoc(probs, labels):.3f}, "
                 f"ECE {expected_calibration_error(probs, labels, bins):.5f}\n"
                 f"{int(curve.rows.sum()):,} rows in {len(curve.rows)} equal-count bins",
                 fontsize="medium")
    return fig


def write_reliability_plot(path: Path, probs: np.ndarray, labels: np.ndarray, view: str,
                           bins: int = CALIBRATION_BINS) -> Path:
    """Draw `reliability_figure` and write it to `path` as PNG (atomically)."""
    fig = reliability_figure(probs, labels, view, bins)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path
