"""Calibration maps: a probability [B] in, a calibrated probability [B] out.

Built only from operations that trace to TorchScript and export to ONNX (opset 17): no
`searchsorted`/`bucketize` (the ONNX exporter has none), so the piecewise-linear map finds a
row's segment by counting the breakpoints at or below it. Both maps are non-decreasing in their
input whenever their parameters say so (non-decreasing values, a non-negative slope), in
float32 too: every step below is monotone under rounding, and the interpolation is clamped to
its segment's ends.
"""

from __future__ import annotations

import torch
from torch import nn

PROBABILITY_EPS = 1e-7
"""Probabilities are clamped to [eps, 1 - eps] before their logit is taken (1 - 1e-7 is still
below 1 in float32)."""


def logit(p: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) of `p` clamped to [eps, 1 - eps]; any shape."""
    p = p.clamp(PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
    return torch.log(p) - torch.log1p(-p)


class PiecewiseLinear(nn.Module):
    """Linear interpolation between breakpoints (x_k, y_k), constant beyond the first and the
    last: what scikit-learn's `IsotonicRegression(out_of_bounds="clip").predict` computes.

    Args:
        x: [K] strictly increasing breakpoints, K >= 2.
        y: [K] the values at them.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        super().__init__()
        if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
            raise ValueError(f"need two 1-d tensors of at least 2 breakpoints, got shapes "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        self.register_buffer("x", x.detach().float().clone())
        self.register_buffer("y", y.detach().float().clone())

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """p [B] -> [B]."""
        # Index of the segment's right end: the breakpoints at or below p (a [B, K] compare,
        # cheap for the few hundred breakpoints an isotonic fit keeps), kept inside 1..K-1.
        right = (p.unsqueeze(-1) >= self.x).sum(-1).clamp(1, self.x.shape[0] - 1)
        left = right - 1
        x0, x1 = self.x[left], self.x[right]
        y0, y1 = self.y[left], self.y[right]
        t = ((p - x0) / (x1 - x0)).clamp(0.0, 1.0)
        return torch.minimum(torch.maximum(y0 + t * (y1 - y0), y0), y1)


class LogitAffine(nn.Module):
    """sigmoid(slope · logit(p) + intercept): Platt scaling, and temperature scaling with
    slope 1/T and intercept 0."""

    def __init__(self, slope: float, intercept: float = 0.0):
        super().__init__()
        self.register_buffer("slope", torch.tensor(float(slope)))
        self.register_buffer("intercept", torch.tensor(float(intercept)))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """p [B] -> [B]."""
        return torch.sigmoid(self.slope * logit(p) + self.intercept)


class SlicedMap(nn.Module):
    """A map per slice of the rows (such as their target action), and a pooled map for the
    rows of every other slice.

    Args:
        pooled: the map of rows whose key has no map of its own.
        by_key: key (0 <= key < keys) -> that slice's map.
        keys: how many key values there are; a key outside [0, keys) takes the pooled map.
    """

    def __init__(self, pooled: nn.Module, by_key: dict[int, nn.Module], keys: int):
        super().__init__()
        if any(not 0 <= k < keys for k in by_key):
            raise ValueError(f"slice keys must lie in [0, {keys}), got {sorted(by_key)}")
        self.maps = nn.ModuleList([pooled, *by_key.values()])
        self.keys = keys
        # slot[key + 1]: which map a key takes (0, the pooled one, for key -1 and the keys
        # without a map of their own)
        slot = torch.zeros(keys + 1, dtype=torch.long)
        for position, key in enumerate(by_key, start=1):
            slot[key + 1] = position
        self.register_buffer("slot", slot)

    def forward(self, p: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """p [B] float, key [B] int64 -> [B]."""
        inside = (key >= 0) & (key < self.keys)
        chosen = self.slot[torch.where(inside, key + 1, torch.zeros_like(key))]
        every = torch.stack([m(p) for m in self.maps], 1)  # [B, maps]
        return every.gather(1, chosen.unsqueeze(1)).squeeze(1)
