"""Delayed-feedback corrections of a binary view's loss (Ktena et al. 2019; Chapelle 2014).

Ktena et al. train on a stream in which every click is ingested at once as a negative and
ingested again as a positive when its conversion arrives. Training as of T
(`malt.data.as_of`) holds that stream's content up to T without duplicating rows: each click
once, with its label known at T. A row with known target t in [0, 1] therefore stands for
its negative copy plus t times its positive copy, and its stream loss is

    ℓ_row = w₋ · ℓ(z, 0) + t · w₊ · ℓ(z, 1),        ℓ(z, y) = BCE with logits

- `fnc` (fake-negative calibration): w₋ = w₊ = 1. The model learns the stream's rate
  q = b(y=1|x), and predicts p = q / (1 − q) = exp(z) (`corrected_probability`).
- `fnw` (fake-negative weighting): the importance weights of the stream,
  w₊ = 1 + f and w₋ = (1 − f)(1 + f), f = sigmoid(z) the model's own prediction with its
  gradient stopped (the weights are constants of the sampling, not a path to the
  parameters). The model predicts p = sigmoid(z) as usual.

A view's loss is the mean of ℓ_row over the rows (with a training mask, over its rows:
Σ mask · ℓ_row / max(1, Σ mask)), as the uncorrected loss is. Both are stationary where the
prediction is the rate of the labels trained on: the paper's corrections undo its stream's
duplicated positives, which as-of rows do not have, so here they share the naive optimum and
differ in the scale of each row's gradient. docs/training.md, "Delayed feedback", derives both
and says what the paper leaves open.

- `dfm` (delayed-feedback model, Chapelle, KDD 2014): a view's conversion probability
  p = sigmoid(z) and an exponential delay of rate λ = exp(θ) per day, θ one learnable number
  per view (`DelayRates`). With the row's elapsed time e at T and, for a label known at T, its
  delay d (both in days; `malt.data.batches.delay_times`), a row's loss is

      known positive:  −log p − log λ + λ d
      not yet known:   −log(1 − p + p · exp(−λ e))

  the second evaluated as −logaddexp(log sigmoid(−z), log sigmoid(z) − λ e). A soft target t
  (`--label-mode weighted`) mixes them: t · positive + (1 − t) · not yet known. The model
  predicts p; λ serves training only.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

DAY_SECONDS = 86400.0
"""The unit of `dfm`'s times: λ is a rate per day, so its log starts near the scale of
conversion delays (minutes to weeks) whatever the data's clock."""


def fnw_weights(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FNW's importance weights (w₋, w₊) = ((1 − f)(1 + f), 1 + f) of logits [B], f =
    sigmoid(logits) detached: no gradient flows through them. float32 [B] each."""
    f = torch.sigmoid(logits.detach().float())
    return (1.0 - f) * (1.0 + f), 1.0 + f


STREAM_CORRECTIONS = ("fnw", "fnc")
"""The corrections of Ktena et al.'s stream, which reweigh a row's BCE; `dfm` models the delay."""


def stream_row_losses(logits: torch.Tensor, target: torch.Tensor, correction: str
                      ) -> torch.Tensor:
    """ℓ_row of every row (module docstring) under `correction` (`fnw` or `fnc`): logits,
    target [B] -> float32 [B]."""
    z, t = logits.float(), target.float()
    negative = F.binary_cross_entropy_with_logits(z, torch.zeros_like(z), reduction="none")
    positive = F.binary_cross_entropy_with_logits(z, torch.ones_like(z), reduction="none")
    if correction == "fnc":
        return negative + t * positive
    if correction == "fnw":
        w_negative, w_positive = fnw_weights(z)
        return w_negative * negative + t * w_positive * positive
    raise ValueError(f"unknown delay correction '{correction}' (fnw or fnc)")


def stream_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                correction: str) -> torch.Tensor:
    """Mean ℓ_row over the rows, or Σ mask · ℓ_row / max(1, Σ mask) with a mask: logits,
    target, mask [B] -> scalar."""
    return masked_mean(stream_row_losses(logits, target, correction), mask)


def masked_mean(rows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """rows [B] -> their mean, or Σ mask · rows / max(1, Σ mask) with a mask [B]."""
    if mask is None:
        return rows.mean()
    mask = mask.float()
    return (rows * mask).sum() / mask.sum().clamp(min=1.0)


def corrected_probability(logits: torch.Tensor, correction: str) -> torch.Tensor:
    """The predicted probability of a view's logits [B] under `correction`: sigmoid(z), or
    for `fnc` q / (1 − q) with q = sigmoid(z), which is exp(z), capped at 1 (q ≤ 1/2 in the
    stream, so the cap binds only off the training distribution)."""
    if correction == "fnc":
        return torch.exp(logits.clamp(max=0.0))
    return torch.sigmoid(logits)


class DelayRates(nn.Module):
    """`dfm`'s delay model: one learnable log-rate θ per view, λ = exp(θ) per day. Parameters
    of the model, so warm start, resume and checkpoints keep them like any weight."""

    def __init__(self, views: Iterable[str], log_rate: float = 0.0):
        super().__init__()
        self.log_rates = nn.ParameterDict(
            {v: nn.Parameter(torch.tensor(float(log_rate))) for v in views})

    def __getitem__(self, view: str) -> torch.Tensor:
        return self.log_rates[view]


def dfm_row_losses(logits: torch.Tensor, log_rate: torch.Tensor, target: torch.Tensor,
                   elapsed: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
    """`dfm`'s loss of every row (module docstring): logits, target [B], elapsed and delay [B]
    in seconds (delay read only where the target is positive), log_rate θ a scalar (per day)
    -> float32 [B]."""
    z, t = logits.float(), target.float()
    theta = log_rate.float()
    rate = theta.exp()
    positive = F.softplus(-z) - theta + rate * (delay.float() / DAY_SECONDS)
    converts_later = F.logsigmoid(z) - rate * (elapsed.float() / DAY_SECONDS)
    unknown = -torch.logaddexp(F.logsigmoid(-z), converts_later)
    return t * positive + (1.0 - t) * unknown


def dfm_loss(logits: torch.Tensor, log_rate: torch.Tensor, target: torch.Tensor,
             elapsed: torch.Tensor, delay: torch.Tensor, mask: torch.Tensor | None
             ) -> torch.Tensor:
    """Mean `dfm_row_losses` over the rows, or Σ mask · ℓ_row / max(1, Σ mask) with a mask
    [B] -> scalar."""
    return masked_mean(dfm_row_losses(logits, log_rate, target, elapsed, delay), mask)
