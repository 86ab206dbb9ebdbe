"""What `malt simulate` reports: positive ratios, clicks per user, journey lengths."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from malt.sources.simulate.labels import LABELS

MAC_RATIOS = {"last": 0.016, "first": 0.018, "linear": 0.053, "mta": 0.043}
"""Positive ratios of the MAC release (its Table 2; `mta` is the DDA label)."""
_LONGEST = 10
"""Journey lengths above this share one histogram bin."""


@dataclass
class SimStats:
    """Figures over the written clicks and the purchases made during the written days."""

    clicks: int = 0
    journey_clicks: int = 0
    positives: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    clicks_per_user: list[np.ndarray] = field(default_factory=list)
    journey_lengths: np.ndarray = field(default_factory=lambda: np.zeros(_LONGEST + 1, np.int64))
    buyers: int = 0
    buyers_multi_click: int = 0
    rows_per_day: list[int] = field(default_factory=list)
    seconds: float = 0.0
    clicked: int | None = None
    """Impression logs: how many of the written rows (impressions) were clicked."""

    def add_chunk(self, user: np.ndarray, journey: np.ndarray, weights: np.ndarray,
                  purchase_user: np.ndarray, journey_size: np.ndarray,
                  clicked: np.ndarray | None = None) -> None:
        """Add the written clicks of one chunk (user, journey [N] with -1 for one-off clicks,
        weights [N, 4], and for impression logs clicked [N] 0/1) and its purchases inside the
        written days (user, clicks credited)."""
        self.clicks += len(user)
        if clicked is not None:
            self.clicked = (self.clicked or 0) + int(np.count_nonzero(clicked))
        self.journey_clicks += int(np.count_nonzero(journey >= 0))
        for j, label in enumerate(LABELS):
            self.positives[label] += int(np.count_nonzero(weights[:, j] > 0))
        _, counts = np.unique(user, return_counts=True)
        self.clicks_per_user.append(counts)
        credited = journey_size > 0
        size = journey_size[credited]
        self.journey_lengths += np.bincount(np.minimum(size, _LONGEST + 1) - 1,
                                            minlength=_LONGEST + 1)
        buyers, inverse = np.unique(purchase_user[credited], return_inverse=True)
        mean = np.bincount(inverse, weights=size) / np.bincount(inverse)
        self.buyers += len(buyers)
        self.buyers_multi_click += int(np.count_nonzero(mean > 1))

    def ratios(self) -> dict[str, float]:
        return {label: n / max(self.clicks, 1) for label, n in self.positives.items()}

    def format(self) -> str:
        per_user = np.concatenate(self.clicks_per_user) if self.clicks_per_user else np.zeros(1)
        ratios = self.ratios()
        lengths = self.journey_lengths / max(self.journey_lengths.sum(), 1)
        bins = [f"{k + 1}: {100 * s:.1f}%" for k, s in enumerate(lengths[:_LONGEST])]
        bins.append(f">{_LONGEST}: {100 * lengths[_LONGEST]:.1f}%")
        in_journeys = 100 * self.journey_clicks / max(self.clicks, 1)
        lines = [
            f"clicks           {self.clicks:,} ({in_journeys:.1f}% in interest journeys, the "
            f"rest one-off); rows per day "
            f"{min(self.rows_per_day, default=0):,} to {max(self.rows_per_day, default=0):,}",
            "positive ratio   " + "  ".join(f"{k} {100 * v:.2f}%" for k, v in ratios.items())
            + "   (MAC: " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in MAC_RATIOS.items())
            + ")",
            f"clicks per user  mean {per_user.mean():.1f}  median {np.median(per_user):.0f}  "
            f"p90 {np.percentile(per_user, 90):.0f}  max {per_user.max():,}  "
            f"({len(per_user):,} users)",
            f"purchases        {int(self.journey_lengths.sum()):,} with credited clicks; "
            "clicks per purchase journey:",
            "                 " + "  ".join(bins),
            f"buyers with more than one click per journey (mean): "
            f"{100 * self.buyers_multi_click / max(self.buyers, 1):.1f}% of {self.buyers:,}",
            f"took {self.seconds:.1f} s ({self.clicks / max(self.seconds, 1e-9):,.0f} clicks/s)",
        ]
        if self.clicked is not None:
            lines.insert(1, f"impressions      every row above is an impression: {self.clicked:,} "
                            f"({100 * self.clicked / max(self.clicks, 1):.1f}%) clicked")
        return "\n".join(lines)
