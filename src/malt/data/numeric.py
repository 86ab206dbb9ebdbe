"""Scalar numeric features: their running moments and the standardisation they give.

A schema's numeric column is fed to the models as one number per row after its transform:
`standardise` ((x - mean) / std, the moments of the training days), `log1p` (log(1 + x), for
counts and prices spanning orders of magnitude; x must be above -1) or `none`. The cache keeps
the raw values and, per day, the count, mean and sum of squared deviations of every
`standardise` column, so the statistics of any set of training days are combined exactly
without reading the rows again (Chan et al.'s pairwise update).

A value beyond `MAX_MAGNITUDE` is refused at `malt prepare` (numeric columns and float
sequences alike), with or without `numeric_fill`: that fills values that are not numbers (null,
NaN, inf), while a number this large is a mistake or a sentinel the data should not hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_MAGNITUDE = 1e18
"""Largest |value| a numeric column or float sequence may hold. float32 (the cache and the
models) holds values up to 3.4e38, and squares of values up to 1.8e19 (a variance, the
encoder's LayerNorm of a `none` column); 1e18 leaves room for sums of such squares."""


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations (M2) of a set of values."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        """The moments of `values` [N] (float64 sums)."""
        if not len(values):
            return cls()
        mean = float(values.mean(dtype=np.float64))
        return cls(len(values), mean, float(np.square(values - mean, dtype=np.float64).sum()))

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets together."""
        if not other.count:
            return self
        if not self.count:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        return Moments(count, self.mean + delta * other.count / count,
                       self.m2 + other.m2 + delta * delta * self.count * other.count / count)

    @property
    def std(self) -> float:
        """Population standard deviation (0 for fewer than two values)."""
        return float(np.sqrt(self.m2 / self.count)) if self.count > 1 else 0.0

    def to_list(self) -> list[float]:
        return [self.count, self.mean, self.m2]

    @classmethod
    def from_list(cls, values: list[float]) -> Moments:
        count, mean, m2 = values
        return cls(int(count), float(mean), float(m2))


def standardisation(transform: str, moments: Moments | None) -> tuple[float, float]:
    """(shift, scale) the model applies after `transform`: (mean, std) of the training days for
    `standardise` (scale 1 for a constant column), (0, 1) otherwise."""
    if transform != "standardise":
        return 0.0, 1.0
    if moments is None or not moments.count:
        raise ValueError("standardise needs the moments of at least one training row")
    return moments.mean, moments.std or 1.0
