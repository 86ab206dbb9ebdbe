"""Label statistics of a data set (MAC paper Table 2 and Table 8), computed from the weights.

Table 2 is the share of clicks with a positive weight under each attribution rule. Table 8's MML
is, over the positives of a target rule (last-click, first-click), the mean of the DDA weight
minus the linear weight: positive when DDA credits those clicks more than an even split does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

DDA_LABEL = "mta"
"""The DDA label of the MAC schema."""
LINEAR_LABEL = "linear"


@dataclass(frozen=True)
class LabelStats:
    """Sums over every row of the days given.

    Attributes:
        labels: label names [V] in schema order.
        rows: rows counted.
        positives: [V] rows with weight > 0 per label.
        positive_weight: [V] sum of the weights of those rows.
        dda_minus_linear: [V] sum over each label's positives of (DDA − linear weight); NaN for
            every label when the data has no DDA or no linear label.
    """

    labels: tuple[str, ...]
    rows: int
    positives: np.ndarray
    positive_weight: np.ndarray
    dda_minus_linear: np.ndarray

    def ratio(self, label: str) -> float:
        """Share of rows positive under `label`."""
        return float(self.positives[self.labels.index(label)] / self.rows) if self.rows \
            else float("nan")

    def mean_positive_weight(self, label: str) -> float:
        i = self.labels.index(label)
        return float(self.positive_weight[i] / self.positives[i]) if self.positives[i] \
            else float("nan")

    def mml(self, label: str) -> float:
        """Mean (DDA − linear) weight over the positives of `label` (Table 8)."""
        i = self.labels.index(label)
        return float(self.dda_minus_linear[i] / self.positives[i]) if self.positives[i] \
            else float("nan")

    @property
    def has_mml(self) -> bool:
        return DDA_LABEL in self.labels and LINEAR_LABEL in self.labels


def label_statistics(days: Iterable[np.ndarray], labels: Sequence[str]) -> LabelStats:
    """Accumulate the statistics over days of raw attribution weights.

    Args:
        days: one [N, V] weight array per day (columns in `labels` order).
        labels: the V label names.
    """
    labels = tuple(labels)
    v = len(labels)
    rows, positives = 0, np.zeros(v, np.int64)
    positive_weight, diff_sum = np.zeros(v), np.zeros(v)
    has_mml = DDA_LABEL in labels and LINEAR_LABEL in labels
    for weights in days:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != v:
            raise ValueError(f"weights must be [N, {v}], got {w.shape}")
        positive = w > 0
        rows += len(w)
        positives += positive.sum(0)
        positive_weight += np.where(positive, w, 0.0).sum(0)
        if has_mml:
            diff = w[:, labels.index(DDA_LABEL)] - w[:, labels.index(LINEAR_LABEL)]
            diff_sum += diff @ positive
    if not has_mml:
        diff_sum[:] = np.nan
    return LabelStats(labels, rows, positives, positive_weight, diff_sum)
