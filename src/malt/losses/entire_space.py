"""The losses of entire-space training (ESMM, Ma et al. 2018), from logits.

Over every impression i, with click c_i and conversion label y_i (0 where c_i is 0):

    pCTR_i   = σ(a_i)                      (the click head's logit a_i)
    pCVR_i   = σ(b_i)                      (the view's logit b_i; never fitted on its own)
    pCTCVR_i = pCTR_i · pCVR_i
    L_CTR    = mean_i BCE(pCTR_i, c_i)
    L_CTCVR  = mean_i BCE(pCTCVR_i, c_i · y_i)

The product is taken in log space, log pCTCVR = log σ(a) + log σ(b), and log(1 − pCTCVR) from
it by `log1mexp`, so no probability is rounded to 0 or 1 before its logarithm (and the loss
works under autocast, where `binary_cross_entropy` on probabilities is refused).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)
NEAR_ONE = -1e-7
"""log pCTCVR is kept at most this (pCTCVR ≤ 1 − 1e-7) so that log(1 − pCTCVR) stays finite."""


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x < 0, accurate at both ends (Mächler 2012): log(−expm1(x)) above
    −ln 2, log1p(−exp(x)) below. Each branch sees only inputs where it is finite, so neither
    puts a NaN in the gradient."""
    near_zero = x > -LN2
    upper = torch.log(-torch.expm1(torch.where(near_zero, x, torch.full_like(x, -LN2))))
    lower = torch.log1p(-torch.exp(torch.where(near_zero, torch.full_like(x, -LN2), x)))
    return torch.where(near_zero, upper, lower)


def ctcvr_log_probability(ctr_logit: torch.Tensor, cvr_logit: torch.Tensor) -> torch.Tensor:
    """log(σ(a) · σ(b)): click logits a [B], conversion logits b [B] -> [B] (float32)."""
    return F.logsigmoid(ctr_logit.float()) + F.logsigmoid(cvr_logit.float())


def ctcvr_loss(ctr_logit: torch.Tensor, cvr_logit: torch.Tensor, target: torch.Tensor
               ) -> torch.Tensor:
    """Mean BCE of pCTCVR = σ(a) · σ(b) against `target` = click · conversion in [0, 1]:
    a, b, target [B] -> scalar."""
    log_p = ctcvr_log_probability(ctr_logit, cvr_logit).clamp(max=NEAR_ONE)
    target = target.float()
    return -(target * log_p + (1 - target) * log1mexp(log_p)).mean()
