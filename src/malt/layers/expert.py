"""Experts: the dimension-gating expert of the reference, HoME's feature gate and normalised
Swish experts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcite(nn.Module):
    """A per-position gate shared by all groups of the input.

    The input [B, D] is cut into consecutive groups of `group` values (for the fused features
    with group = d these are the fields). Squeeze: the mean over groups of each position gives
    z [B, group]; excite: w = sigmoid(P2 · ReLU(P1 · z)) with P1 [group/r, group],
    P2 [group, group/r], no biases; every group is multiplied by w.

    When D is not a multiple of `group`, the last group is partial: its positions are gated by
    the first D mod group entries of w, and the squeeze averages each position over the groups
    that hold it (no zero padding enters the mean).
    """

    def __init__(self, dim: int, group: int, reduction: int = 4):
        super().__init__()
        if group % reduction:
            raise ValueError(f"group {group} is not a multiple of reduction {reduction}")
        self.dim, self.group = dim, group
        self.n_groups = -(-dim // group)
        self.down = nn.Linear(group, group // reduction, bias=False)
        self.up = nn.Linear(group // reduction, group, bias=False)
        held = torch.full((group,), float(dim // group))
        held[: dim % group] += 1
        # When D < group, positions no group holds squeeze to 0 instead of 0 / 0.
        self.register_buffer("held", held.clamp(min=1.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, D] -> x re-weighted [B, D]."""
        groups = self._grouped(x)
        z = groups.sum(1) / self.held
        w = torch.sigmoid(self.up(F.relu(self.down(z))))
        return (groups * w.unsqueeze(1)).flatten(1)[:, : self.dim]

    def _grouped(self, x: torch.Tensor) -> torch.Tensor:
        extra = self.n_groups * self.group - self.dim
        if extra:
            x = F.pad(x, (0, extra))
        return x.view(x.shape[0], self.n_groups, self.group)


class FeatureGate(nn.Module):
    """HoME's private input re-weighting of one expert: x ⊙ 2·sigmoid(B · A · x).

    A [rank, D] and B [D, rank] have no biases and both start with the default (random) init,
    as in the reference; the factor 2 keeps the mean multiplier near 1.
    """

    def __init__(self, dim: int, rank: int):
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, D] -> [B, D]."""
        return x * (2.0 * torch.sigmoid(self.up(self.down(x))))


class Expert(nn.Module):
    """One expert: [feature gate] -> [squeeze-excitation] -> linear -> [batch norm] -> activation.

    The reference expert is SE + linear + ReLU (`se_group` set, `norm=False`,
    `activation="relu"`); the HoME paper's expert is linear + batch norm + Swish with a feature
    gate (`se_group=None`, `norm=True`, `activation="swish"`, `feature_gate_rank` set).
    Batch normalisation uses batch statistics in training (running ones for a single row) and
    running statistics in evaluation.

    Args:
        in_dim: input width.
        out_dim: output width.
        se_group: group width of the squeeze-excitation gate, None for no gate.
        se_reduction: its bottleneck factor.
        norm: batch-normalise the linear output (expert normalisation).
        activation: `relu` or `swish`.
        feature_gate_rank: rank of a private feature gate on the input, None for none.
    """

    def __init__(self, in_dim: int, out_dim: int, *, se_group: int | None = None,
                 se_reduction: int = 4, norm: bool = False, activation: str = "relu",
                 feature_gate_rank: int | None = None):
        super().__init__()
        if activation not in ("relu", "swish"):
            raise ValueError(f"activation must be 'relu' or 'swish', got {activation!r}")
        self.feature_gate = FeatureGate(in_dim, feature_gate_rank) \
            if feature_gate_rank is not None else None
        self.se = SqueezeExcite(in_dim, se_group, se_reduction) if se_group is not None else None
        self.linear = nn.Linear(in_dim, out_dim)
        self.norm = nn.BatchNorm1d(out_dim) if norm else None
        self.activation = F.relu if activation == "relu" else F.silu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in_dim] -> [B, out_dim]."""
        if self.feature_gate is not None:
            x = self.feature_gate(x)
        if self.se is not None:
            x = self.se(x)
        y = self.linear(x)
        if self.norm is not None:
            y = self._normalise(y)
        return self.activation(y)

    def _normalise(self, y: torch.Tensor) -> torch.Tensor:
        # A one-row training batch (a day's last partial batch) has no batch variance: it is
        # normalised with the running statistics, which it leaves unchanged.
        if not self.training or y.shape[0] > 1:
            return self.norm(y)
        n = self.norm
        return F.batch_norm(y, n.running_mean, n.running_var, n.weight, n.bias, training=False,
                            eps=n.eps)
