"""The RLU ranking loss against a brute-force double loop over (positive, zero) pairs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from malt.losses.ranking import ranking_loss


def _brute_force_rank(logits, labels, keep, weights, normalize):
    total = 0.0
    b, n = logits.shape
    for k in range(n):
        pairs, value = 0, 0.0
        for i in range(b):
            for j in range(b):
                if i == j or not (keep[i, k] and keep[j, k]):
                    continue
                if labels[i, k] > labels[j, k]:
                    value += -F.logsigmoid(logits[i, k] - logits[j, k]).item()
                    pairs += 1
        if pairs:
            total += weights[k] * value / (pairs if normalize == "pairs" else b)
    return total


@pytest.mark.parametrize("normalize", ["pairs", "batch"])
@pytest.mark.parametrize("seed", range(4))
def test_ranking_loss_equals_a_double_loop_over_positive_zero_pairs(seed, normalize):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(15, 3, generator=g) * 2
    labels = (torch.rand(15, 3, generator=g) < 0.3).float()
    labels[:, 2] = 0.0                                   # a task without positives adds nothing
    keep = torch.rand(15, 3, generator=g) < 0.8
    weights = [1.0, 0.5, 2.0]
    got = ranking_loss(logits, labels, keep, weights, normalize)
    want = _brute_force_rank(logits, labels, keep, weights, normalize)
    assert got.item() == pytest.approx(want, rel=1e-5)
    everyone = torch.ones_like(keep)
    assert ranking_loss(logits, labels, None, weights, normalize).item() == pytest.approx(
        _brute_force_rank(logits, labels, everyone, weights, normalize), rel=1e-5)


def test_ranking_loss_ignores_zero_zero_and_one_one_pairs():
    logits = torch.tensor([[2.0], [1.0], [-1.0], [5.0]])
    labels = torch.tensor([[1.0], [1.0], [0.0], [0.0]])
    base = ranking_loss(logits, labels)
    moved = logits.clone()
    moved[[0, 1]] = moved[[1, 0]]                        # reorder the two positives
    assert torch.isclose(ranking_loss(moved, labels), base)
    one_pair = ranking_loss(torch.tensor([[0.3], [1.1]]), torch.tensor([[1.0], [0.0]]))
    assert torch.isclose(one_pair, F.softplus(torch.tensor(1.1 - 0.3)))


def test_a_task_without_pairs_does_not_stop_the_tasks_after_it():
    logits = torch.tensor([[0.2, 0.5], [0.9, -0.3]])
    labels = torch.tensor([[0.0, 1.0], [0.0, 0.0]])     # task 0: no positive; task 1: one pair
    got = ranking_loss(logits, labels)
    assert torch.isclose(got, F.softplus(torch.tensor(-0.3 - 0.5)))


def test_an_unknown_normalisation_is_refused():
    with pytest.raises(ValueError, match=r"^normalize must be one of \('pairs', 'batch'\), got"):
        ranking_loss(torch.zeros(2, 1), torch.zeros(2, 1), normalize="rows")
