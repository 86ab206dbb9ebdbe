"""Per-view losses: BCE and cross-entropy from logits, label modes, the CAT encoding."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.data.task import CAT
from malt.losses.views import binary_loss, cat_classes, cat_loss, view_losses


def test_binary_loss_is_the_two_way_softmax_of_the_reference():
    z = torch.randn(50) * 3
    y = (torch.rand(50) < 0.3).float()
    two_way = torch.stack([torch.zeros(50), z], 1)               # softmax over (0, z)
    want = -torch.log_softmax(two_way, 1)[torch.arange(50), y.long()].mean()
    torch.testing.assert_close(binary_loss(z, y), want)


def test_losses_stay_finite_and_exact_for_confident_logits():
    z = torch.tensor([60.0, -60.0])
    y = torch.tensor([0.0, 1.0])
    assert torch.isclose(binary_loss(z, y), torch.tensor(60.0))   # log(p + 1e-8) caps at 18.4
    logits = torch.tensor([[80.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor([[1.0, 0.0]])                            # class 1, not 0
    assert torch.isclose(cat_loss(logits, labels), torch.tensor(80.0))


def test_cat_class_order_is_the_documented_one():
    # MAC label order (last, first, linear, mta): bit 0 last, 1 first, 2 linear, 3 mta.
    labels = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert cat_classes(labels).tolist() == [5, 14, 0, 15]
    logits = torch.randn(4, 16)
    torch.testing.assert_close(cat_loss(logits, labels.float()), torch.nn.functional
                               .cross_entropy(logits, torch.tensor([5, 14, 0, 15])))


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_cat_round_trips(k, seed):
    labels = (torch.rand(20, k, generator=torch.Generator().manual_seed(seed)) < 0.5).long()
    classes = cat_classes(labels)
    assert ((classes >= 0) & (classes < 2 ** k)).all()
    bits = (classes.unsqueeze(-1) // 2 ** torch.arange(k)) % 2  # bit i of the class: label i
    assert torch.equal(bits, labels)


def test_view_losses_binary_and_weighted_targets():
    weights = torch.tensor([[0.0, 0.4], [1.7, 0.0], [0.2, 1.0]])
    batch = {"weights": weights, "labels": (weights > 0).float()}
    logits = {"b": torch.randn(3), "a": torch.randn(3), CAT: torch.randn(3, 4)}
    columns = {"a": 0, "b": 1}
    binary = view_losses(logits, batch, columns, "binary")
    assert list(binary) == ["b", "a", CAT]
    torch.testing.assert_close(binary["a"], binary_loss(logits["a"], torch.tensor([0., 1, 1])))
    weighted = view_losses(logits, batch, columns, "weighted")
    torch.testing.assert_close(weighted["a"], binary_loss(logits["a"],
                                                          torch.tensor([0.0, 1.0, 0.2])))
    torch.testing.assert_close(weighted["b"], binary_loss(logits["b"],
                                                          torch.tensor([0.4, 0.0, 1.0])))
    torch.testing.assert_close(binary[CAT], cat_loss(logits[CAT], batch["labels"]))
    torch.testing.assert_close(weighted[CAT], binary[CAT])       # CAT uses binarised labels
    default = view_losses(logits, batch, columns)
    assert all(torch.equal(default[v], binary[v]) for v in binary)
    with pytest.raises(ValueError, match="^unknown label mode 'soft' \\(binary or weighted\\)$"):
        view_losses(logits, batch, columns, "soft")


def test_masked_loss_averages_over_the_trusted_rows_only():
    from malt.losses.views import masked_binary_loss

    z = torch.tensor([0.5, -1.0, 2.0, 0.0])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    per_row = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
    mask = torch.tensor([1.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(masked_binary_loss(z, y, mask), per_row[[0, 2, 3]].mean())
    # Fewer than one trusted row: the sum is not blown up by dividing by a small mask.
    half = torch.tensor([0.5, 0.0, 0.0, 0.0])
    torch.testing.assert_close(masked_binary_loss(z, y, half), 0.5 * per_row[0])
    assert masked_binary_loss(z, y, torch.zeros(4)).item() == 0.0


def test_view_losses_use_each_views_own_mask_and_target():
    from malt.losses.views import masked_binary_loss

    logits = {"a": torch.tensor([0.3, -0.2, 1.0]), "b": torch.tensor([-1.0, 0.5, 0.1])}
    weights = torch.tensor([[0.4, 0.0], [0.0, 1.7], [1.0, 0.2]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    batch = {"labels": (weights > 0).float(), "weights": weights, "mask": mask}
    columns = {"a": 0, "b": 1}
    binary = view_losses(logits, batch, columns)
    weighted = view_losses(logits, batch, columns, "weighted")
    for view, col in columns.items():
        torch.testing.assert_close(binary[view], masked_binary_loss(
            logits[view], batch["labels"][:, col], mask[:, col]))
        torch.testing.assert_close(weighted[view], masked_binary_loss(
            logits[view], weights[:, col].clamp(0, 1), mask[:, col]))
    assert not torch.isclose(binary["a"], weighted["a"])
    unmasked = view_losses(logits, {k: v for k, v in batch.items() if k != "mask"}, columns)
    assert not torch.isclose(unmasked["b"], binary["b"])


def test_the_cartesian_view_refuses_a_mask():
    batch = {"labels": torch.zeros(2, 2), "mask": torch.ones(2, 2)}
    with pytest.raises(ValueError, match="^the Cartesian view needs every label: it takes no"):
        view_losses({CAT: torch.zeros(2, 4)}, batch, {})


def test_weighted_targets_are_clamped_to_zero_and_one():
    from malt.losses.views import binary_target

    batch = {"labels": torch.tensor([[1.0], [0.0], [1.0]]),
             "weights": torch.tensor([[1.7], [-0.2], [0.4]])}
    assert binary_target(batch, 0, "weighted").tolist() == [1.0, 0.0, pytest.approx(0.4)]
    assert binary_target(batch, 0, "binary").tolist() == [1.0, 0.0, 1.0]
