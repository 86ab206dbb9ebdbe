"""Figures, drawn with matplotlib's Agg canvas (no display, no global backend switch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from malt.outputs import atomic_write


def grouped_bars(categories: Sequence[str],
                 series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                 title: str, xlabel: str, ylabel: str, panels: Sequence[str] | None = None):
    """A bar chart with one group of bars per category and one bar per series (mean, with the
    std as an error bar where finite). With `panels`, `series` keys are `(panel, name)` pairs
    and each panel gets its own axes side by side.

    Args:
        categories: x-axis groups [G].
        series: name (or (panel, name)) -> (means [G], stds [G]); NaN draws nothing.
    Returns:
        a `matplotlib.figure.Figure`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panel_names = list(panels) if panels else [""]
    fig = Figure(figsize=(max(6.0, 1.2 * len(categories)) * len(panel_names), 4.2),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panel_names), squeeze=False, sharey=True)[0]
    x = np.arange(len(categories))
    for ax, panel in zip(axes, panel_names):
        members = [(k, v) for k, v in series.items() if not panels or k[0] == panel]
        width = 0.8 / max(len(members), 1)
        for i, (key, (means, stds)) in enumerate(members):
            name = key[1] if panels else key
            m = np.asarray(means, dtype=np.float64)
            s = np.asarray(stds, dtype=np.float64)
            offset = (i - (len(members) - 1) / 2) * width
            ax.bar(x + offset, np.nan_to_num(m), width, label=name,
                   yerr=np.where(np.isfinite(s), s, 0.0) if np.isfinite(s).any() else None,
                   capsize=3)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(x, list(categories))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(panel or title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    if panels:
        fig.suptitle(title)
    return fig


def daily_lines(days: Sequence[str], series: Mapping[tuple[str, str], Sequence[float]], *,
                panels: Sequence[str], title: str, xlabel: str):
    """One panel per metric, each a line per series against the day.

    Args:
        days: x-axis labels [D], in time order.
        series: (panel, name) -> values [D]; NaN leaves a gap.
        panels: the panels' titles, left to right.
    Returns:
        a `matplotlib.figure.Figure`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(3.2, 0.5 * len(days)) * len(panels), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    x = np.arange(len(days))
    for ax, panel in zip(axes, panels):
        for (where, name), values in series.items():
            if where == panel:
                ax.plot(x, np.asarray(values, dtype=np.float64), marker="o", label=name)
        ax.set_xticks(x, list(days), rotation=45, ha="right")
        ax.set_xlabel(xlabel)
        ax.set_title(panel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def save_figure(fig, path: Path) -> Path:
    """Write `fig` as PNG (written to a temporary name first, then renamed)."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, format="png"))
    return path

