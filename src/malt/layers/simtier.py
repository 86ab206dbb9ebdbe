"""SimTier: a histogram of similarity scores over fixed tiers, weighted by learned tier values."""

from __future__ import annotations

import torch
from torch import nn


class SimTier(nn.Module):
    """Per channel: tier counts of the scores, `log2(1 + count) · e_tier`.

    Scores are clipped to [-1, 1] and split into `bins` tiers of width 2 / bins; tier k covers
    [(k - bins/2) / (bins/2), (k + 1 - bins/2) / (bins/2)), the score 1.0 falls into the last
    tier. Each channel has its own learned value per tier (N(0, 0.01²) at start); no gradient
    reaches the scores.

    Args:
        channels: number of float sequences C.
        bins: number of tiers (even).
        combine: `sum` the per-channel vectors (output [B, bins]) or `concat` them
            ([B, C · bins]).
    """

    def __init__(self, channels: int, bins: int = 32, combine: str = "sum"):
        super().__init__()
        self.bins, self.combine = bins, combine
        self.tiers = nn.Parameter(torch.randn(channels, bins) * 0.01)

    @property
    def out_dim(self) -> int:
        return self.bins if self.combine == "sum" else self.bins * self.tiers.shape[0]

    def tier_index(self, scores: torch.Tensor) -> torch.Tensor:
        """Tier of each score: float [...] -> int64 [...] in [0, bins)."""
        half = self.bins // 2
        k = torch.floor(scores.clamp(-1.0, 1.0) * half).long() + half
        return k.clamp_(0, self.bins - 1)

    def counts(self, scores: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tier counts: scores [B, C, L] (positions where `keep` [B, L] is False are skipped)
        -> [B, C, bins]."""
        b, c, _ = scores.shape
        ones = torch.ones_like(scores) if keep is None else \
            keep.unsqueeze(1).to(scores.dtype).expand_as(scores)
        out = scores.new_zeros(b, c, self.bins)
        return out.scatter_add_(2, self.tier_index(scores), ones)

    def forward(self, scores: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """scores [B, C, L], pad bool [B, L] (True = padded, not counted) or None
        -> [B, bins] (sum) or [B, C · bins] (concat)."""
        keep = None if pad is None else ~pad
        h = torch.log2(1.0 + self.counts(scores.detach(), keep)) * self.tiers
        return h.sum(1) if self.combine == "sum" else h.flatten(1)
