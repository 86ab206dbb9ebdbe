"""Delayed-feedback corrections: FNW and FNC losses against hand-computed values, the stopped
gradient of FNW's weights, and what both learn when no label is delayed."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.losses.delayed import corrected_probability, fnw_weights, stream_loss
from malt.losses.views import binary_loss, view_losses

LOG2 = math.log(2.0)
LOG3 = math.log(3.0)
COLUMNS = {"last": 0, "first": 1}


def two_view_batch(mask: bool = False) -> dict[str, torch.Tensor]:
    """Three rows, labels (last, first): (1, 0), (0, 1), (1, 1); first's third row masked
    out when `mask`."""
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    batch = {"labels": labels, "weights": labels.clone()}
    if mask:
        batch["mask"] = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    return batch


# f = sigmoid(z) of the three rows: last (1/2, 3/4, 1/4), first (1/4, 1/2, 3/4)
LOGITS = {"last": torch.tensor([0.0, LOG3, -LOG3]), "first": torch.tensor([-LOG3, 0.0, LOG3])}


def fnw_row(f: float, t: float) -> float:
    """(1 - f)(1 + f) · (-log(1 - f)) + t · (1 + f) · (-log f)."""
    return (1 - f) * (1 + f) * -math.log(1 - f) + t * (1 + f) * -math.log(f)


def test_fnw_loss_of_two_views_matches_the_hand_computed_values():
    losses = view_losses(LOGITS, two_view_batch(), COLUMNS, delay_correction="fnw")
    # last: row 1 (f 1/2, t 1): 3/4·log2 + 3/2·log2; row 2 (3/4, 0): 7/16·log4;
    # row 3 (1/4, 1): 15/16·log(4/3) + 5/4·log4
    last = (2.25 * LOG2 + 0.875 * LOG2 + 15 / 16 * math.log(4 / 3) + 2.5 * LOG2) / 3
    # first: row 1 (1/4, 0): 15/16·log(4/3); row 2 (1/2, 1): 9/4·log2;
    # row 3 (3/4, 1): 7/16·log4 + 7/4·log(4/3)
    first = (15 / 16 * math.log(4 / 3) + 2.25 * LOG2
             + 0.875 * LOG2 + 1.75 * math.log(4 / 3)) / 3
    assert losses["last"].item() == pytest.approx(last, rel=1e-6)
    assert losses["first"].item() == pytest.approx(first, rel=1e-6)
    assert last == pytest.approx((fnw_row(.5, 1) + fnw_row(.75, 0) + fnw_row(.25, 1)) / 3)


def test_fnc_loss_counts_every_row_as_a_negative_and_each_known_positive_once_more():
    losses = view_losses(LOGITS, two_view_batch(mask=True), COLUMNS, delay_correction="fnc")
    # last: -log(1/2) - log(1/2); -log(1/4); -log(3/4) - log(1/4)
    last = (2 * LOG2 + 2 * LOG2 + math.log(4 / 3) + 2 * LOG2) / 3
    # first, third row masked out: -log(3/4); -log(1/2) - log(1/2)
    first = (math.log(4 / 3) + 2 * LOG2) / 2
    assert losses["last"].item() == pytest.approx(last, rel=1e-6)
    assert losses["first"].item() == pytest.approx(first, rel=1e-6)


def test_no_correction_is_the_plain_bce():
    batch = two_view_batch()
    losses = view_losses(LOGITS, batch, COLUMNS, delay_correction="none")
    assert torch.equal(losses["last"], binary_loss(LOGITS["last"], batch["labels"][:, 0]))


def test_fnw_weights_carry_no_gradient_and_the_loss_gradient_is_the_weighted_bce_one():
    z = torch.tensor([0.0, LOG3, -LOG3, 2.0], requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0, 0.5])
    w_negative, w_positive = fnw_weights(z)
    assert not w_negative.requires_grad and not w_positive.requires_grad
    stream_loss(z, t, None, "fnw").backward()
    f = torch.sigmoid(z.detach())
    # d/dz [w₋ ℓ(z,0) + t w₊ ℓ(z,1)] with w constant = (1 - f)(1 + f) f - t (1 + f)(1 - f)
    want = (1 - f) * (1 + f) * (f - t) / len(z)
    torch.testing.assert_close(z.grad, want)
    # The gradient through the weights would add dw/dz terms: a different number.
    z2 = z.detach().clone().requires_grad_(True)
    g = torch.sigmoid(z2)
    through = ((1 - g) * (1 + g) * -torch.log1p(-g) + t * (1 + g) * -torch.log(g)).mean()
    through.backward()
    assert not torch.allclose(z2.grad, want)


def test_fnc_predicts_q_over_one_minus_q_capped_at_one():
    z = torch.tensor([-LOG3, 0.0, -20.0, 3.0])
    q = torch.sigmoid(z)
    torch.testing.assert_close(corrected_probability(z, "fnc")[:3], (q / (1 - q))[:3])
    assert corrected_probability(z, "fnc")[3].item() == 1.0
    torch.testing.assert_close(corrected_probability(z, "fnw"), q)
    torch.testing.assert_close(corrected_probability(z, "none"), q)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=40).filter(lambda y: 0 < sum(y) < len(y)))
def test_both_corrections_learn_the_rate_of_the_labels_they_train_on(labels):
    """A single logit: FNW's loss is stationary at sigmoid(z) = ȳ, FNC's at
    sigmoid(z) = ȳ / (1 + ȳ), which it predicts as ȳ — the matured rate when every label is
    known (as of after every known time), the as-of rate, as naive's, when some are late."""
    y = torch.tensor(labels, dtype=torch.float64)
    rate = y.mean().item()

    def gradient(p: float, correction: str) -> float:
        z = torch.full_like(y, math.log(p / (1 - p)), requires_grad=True)
        stream_loss(z, y, None, correction).backward()
        return z.grad.sum().item()

    fnc_rate = rate / (1 + rate)
    assert gradient(rate, "fnw") == pytest.approx(0.0, abs=1e-6)
    assert gradient(fnc_rate, "fnc") == pytest.approx(0.0, abs=1e-6)
    # away from it the gradient points back to it
    assert gradient(rate / 2, "fnw") < 0 < gradient((1 + rate) / 2, "fnw")
    assert gradient(fnc_rate / 2, "fnc") < 0 < gradient((1 + fnc_rate) / 2, "fnc")
    z_fnc = torch.tensor([math.log(fnc_rate / (1 - fnc_rate))])
    assert corrected_probability(z_fnc, "fnc").item() == pytest.approx(rate, rel=1e-6)


def test_an_unknown_correction_is_refused():
    with pytest.raises(ValueError, match="unknown delay correction"):
        stream_loss(torch.zeros(2), torch.zeros(2), None, "es-dfm")


@pytest.mark.parametrize("correction", ["fnw", "fnc"])
def test_a_mask_averages_over_the_rows_it_keeps_even_a_single_one(correction):
    z, t = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([1.0, 0.0, 1.0])
    one = torch.tensor([0.0, 1.0, 0.0])
    alone = stream_loss(z[1:2], t[1:2], None, correction)
    assert stream_loss(z, t, one, correction).item() == pytest.approx(alone.item(), rel=1e-6)
