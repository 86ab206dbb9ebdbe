"""Ranking-based label utilisation (KAML paper §3.4, Eq. 11): a pairwise logistic loss that
ranks confirmed conversions above zeros.

For task k, P_k are the rows with label 1 and Q_k those with label 0:
    L_rank = Σ_k β_k · (1 / Z_k) · Σ_{i ∈ P_k} Σ_{l ∈ Q_k} softplus(−(s_ik − s_lk))
(softplus(−Δ) = −log σ(Δ)). Only (positive, zero) pairs enter: a zero may be a true negative or
an unreported conversion, and comparing two zeros (or two ones) says nothing. Z_k is the number
of pairs |P_k|·|Q_k| (`pairs`) or the batch size (`batch`, Eq. 11 as written). A task without a
positive or without a zero in the batch contributes nothing. Each task builds a [|P_k|, |Q_k|]
matrix of differences; positives are rare, so this stays far below B².
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

NORMALIZE = ("pairs", "batch")


def ranking_loss(logits: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor | None = None,
                 weights: Sequence[float] | None = None, normalize: str = "pairs"
                 ) -> torch.Tensor:
    """Pairwise ranking loss summed over tasks.

    Args:
        logits: [B, N] one logit per row and task.
        labels: [B, N] 0/1 observed labels.
        keep: bool [B, N] rows that may enter task k's pairs (None: every row).
        weights: β_k per task (None: 1).
        normalize: `pairs` or `batch`.
    Returns:
        A scalar (0, still attached to `logits`, when no task has a pair).
    """
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    total = logits.sum() * 0.0
    positive = labels > 0
    for k in range(logits.shape[1]):
        valid = slice(None) if keep is None else keep[:, k]
        s, y = logits[valid, k].float(), positive[valid, k]
        pos, neg = s[y], s[~y]
        if pos.numel() == 0 or neg.numel() == 0:
            continue
        pairs = F.softplus(neg.unsqueeze(0) - pos.unsqueeze(1))        # [P, Q]
        z = pairs.numel() if normalize == "pairs" else logits.shape[0]
        beta = 1.0 if weights is None else float(weights[k])
        total = total + beta * pairs.sum() / z
    return total
