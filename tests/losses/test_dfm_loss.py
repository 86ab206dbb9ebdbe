"""`dfm` (Chapelle 2014): the loss of a known positive and of a row still waiting, by hand;
its limits; finite gradients; and on long-tail delays it recovers the matured rate where the
naive rate falls short."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from malt.losses.delayed import DAY_SECONDS, DelayRates, dfm_loss, dfm_row_losses
from malt.sources.simulate.config import Params
from malt.sources.simulate.journeys import purchase_delays


def rows(z, theta, t, elapsed_days, delay_days):
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return dfm_row_losses(as_tensor(z), as_tensor(theta), as_tensor(t),
                          as_tensor(elapsed_days) * DAY_SECONDS,
                          as_tensor(delay_days) * DAY_SECONDS)


def test_a_known_positive_by_hand():
    # p = sigmoid(0.5), λ = exp(-1) per day, delay of 2 days: -log p - log λ + λ d.
    p, rate = 1 / (1 + math.exp(-0.5)), math.exp(-1.0)
    want = -math.log(p) - math.log(rate) + rate * 2.0
    got = rows([0.5], -1.0, [1.0], [3.0], [2.0])
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_a_row_still_waiting_by_hand():
    # p = sigmoid(-1), λ = exp(0.3), 1.5 days elapsed: -log(1 - p + p e^{-λ e}).
    p, rate = 1 / (1 + math.exp(1.0)), math.exp(0.3)
    want = -math.log(1 - p + p * math.exp(-rate * 1.5))
    got = rows([-1.0], 0.3, [0.0], [1.5], [0.0])
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_a_soft_target_mixes_the_two():
    both = rows([0.2, 0.2], 0.1, [1.0, 0.0], [4.0, 4.0], [1.0, 1.0])
    mixed = rows([0.2], 0.1, [0.25], [4.0], [1.0])
    assert mixed.item() == pytest.approx(0.25 * both[0].item() + 0.75 * both[1].item())


@pytest.mark.parametrize("z", [-30.0, -2.0, 0.0, 3.0, 30.0])
def test_limits_of_the_elapsed_time(z):
    # Just clicked: nothing is known yet, the row says nothing.
    assert rows([z], 0.0, [0.0], [0.0], [0.0]).item() == pytest.approx(0.0, abs=1e-6)
    # Waited forever: the BCE of a negative.
    negative = F.binary_cross_entropy_with_logits(torch.tensor([z], dtype=torch.float64),
                                                  torch.zeros(1, dtype=torch.float64))
    assert rows([z], 0.0, [0.0], [1e6], [0.0]).item() == pytest.approx(negative.item(),
                                                                       rel=1e-6, abs=1e-6)
    # Monotone between: the longer a row waits unconverted, the more it says "negative".
    waits = rows([z] * 4, 0.0, [0.0] * 4, [0.1, 1.0, 5.0, 50.0], [0.0] * 4)
    assert torch.all(waits[1:] >= waits[:-1] - 1e-7)


def test_gradients_are_finite_at_extreme_logits_and_rates():
    z = torch.tensor([-80.0, 80.0, -80.0, 80.0, 0.0], requires_grad=True)
    for theta_value in (-20.0, 0.0, 8.0):
        theta = torch.tensor(theta_value, requires_grad=True)
        t = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])
        elapsed = torch.tensor([1e3, 1e7, 1e7, 1.0, 0.0])
        delay = torch.tensor([5e2, 1e6, 0.0, 0.0, 0.0])
        loss = dfm_loss(z, theta, t, elapsed, delay, None)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
        assert torch.isfinite(theta.grad)
        z.grad = None


def test_the_mask_averages_over_its_rows():
    z, theta = torch.tensor([0.3, -0.7, 1.1]), torch.tensor(0.2)
    t, e, d = torch.tensor([1.0, 0.0, 0.0]), torch.full((3,), 2e5), torch.tensor([9e4, 0, 0])
    every = dfm_row_losses(z, theta, t, e, d)
    got = dfm_loss(z, theta, t, e, d, torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(got, (every[0] + every[2]) / 2)


def test_on_long_tail_delays_dfm_recovers_the_matured_rate():
    """Clicks over 14 days, 20% converting after the simulator's long-tail delays (credited
    within 7 days), seen as of the end of day 14: the naive rate misses the credit still to
    come; one logit and one log-rate fitted with `dfm` land near the matured rate."""
    day = DAY_SECONDS
    rng = np.random.default_rng(0)
    n = 20_000
    click = rng.uniform(0, 14 * day, n)
    converts = rng.random(n) < 0.2
    session = np.ceil(rng.exponential(2400.0, n)).astype(np.int64)
    delay = purchase_delays(session, Params(purchase_delay="long-tail"),
                            np.random.default_rng(1)).astype(np.float64)
    label = converts & (delay <= 7 * day)
    as_of = 14 * day
    known = label & (click + delay <= as_of)
    matured, naive = label.mean(), known.mean()

    z = torch.zeros((), requires_grad=True)
    theta = torch.zeros((), requires_grad=True)
    target = torch.tensor(known, dtype=torch.float32)
    elapsed = torch.tensor(as_of - click, dtype=torch.float32)
    observed = torch.tensor(np.where(known, delay, 0.0), dtype=torch.float32)
    optimiser = torch.optim.LBFGS([z, theta], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = dfm_loss(z.expand(n), theta, target, elapsed, observed, None)
        loss.backward()
        return loss

    optimiser.step(closure)
    fitted = torch.sigmoid(z).item()
    assert matured - naive > 0.01                       # the naive rate under-predicts
    assert abs(fitted - matured) < 0.25 * (matured - naive)
    assert 0.1 < theta.exp().item() < 24.0              # a delay of about a day, per day


def test_the_delay_rates_are_one_trainable_log_rate_per_view():
    rates = DelayRates(("last", "first"), log_rate=-0.5)
    assert sorted(name for name, _ in rates.named_parameters()) == ["log_rates.first",
                                                                    "log_rates.last"]
    for view in ("last", "first"):
        assert rates[view].shape == () and rates[view].requires_grad
        assert rates[view].item() == -0.5
    assert DelayRates(("last",))["last"].item() == 0.0  # a mean delay of one day to start
