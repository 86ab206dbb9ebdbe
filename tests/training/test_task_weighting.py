"""Uncertainty weighting, Dynamic Weight Average and gcs-ema's smoothed cosines, each against
numbers computed by hand on two tasks."""

import math

import pytest
import torch

from malt.training.distributed import World
from malt.training.task_weighting import (
    DynamicWeightAverage,
    SmoothedSimilarity,
    UncertaintyWeighting,
)


def _tasks(*values: float) -> list[torch.Tensor]:
    return [torch.tensor(v, requires_grad=True) for v in values]


def test_uncertainty_loss_and_gradients_on_two_tasks():
    weighting = UncertaintyWeighting(aux_weight=0.5, world=World())
    tasks = _tasks(2.0, 0.5)
    loss = weighting.loss(tasks)
    # s = 0: 1 · (e^0 · 2 + 0) + λ · (e^0 · 0.5 + 0)
    assert loss.item() == pytest.approx(2.25)
    loss.backward()
    # d/dL_t = f_t e^{-s_t}; d/ds_t = f_t (1 - e^{-s_t} L_t), f = (1, λ)
    assert [t.grad.item() for t in tasks] == pytest.approx([1.0, 0.5])
    assert weighting.log_variance.grad.tolist() == pytest.approx([-1.0, 0.25])
    weighting.step(lr=0.1)
    # Adam's first step moves every coordinate by lr against its gradient's sign.
    assert weighting.log_variance.tolist() == pytest.approx([0.1, -0.1], abs=1e-6)
    assert weighting.log_variance.grad is None
    assert weighting.weights() == pytest.approx([math.exp(-0.1), 0.5 * math.exp(0.1)], rel=1e-5)


def test_uncertainty_log_variances_settle_at_the_log_of_each_loss():
    weighting = UncertaintyWeighting(aux_weight=0.3, world=World())
    for _ in range(600):
        weighting.loss(_tasks(2.0, 0.25)).backward()
        weighting.step(lr=0.05)
    # the minimum of e^{-s} L + s is at s = log L, whatever λ multiplies it by
    assert weighting.log_variance.tolist() == pytest.approx([math.log(2.0), math.log(0.25)],
                                                            abs=1e-2)


def test_uncertainty_state_continues_the_same_steps():
    fresh = UncertaintyWeighting(aux_weight=0.5, world=World())
    fresh.step(lr=0.1)  # nothing to train before the first loss
    fresh.load_state_dict({})  # a checkpoint without a weighting state
    assert fresh.weights() == [] and fresh.log_variance is None
    first = UncertaintyWeighting(aux_weight=0.5, world=World())
    for _ in range(3):
        first.loss(_tasks(2.0, 0.5)).backward()
        first.step(lr=0.1)
    assert UncertaintyWeighting(0.5, World()).state_dict() == {}
    second = UncertaintyWeighting(aux_weight=0.5, world=World())
    second.load_state_dict(first.state_dict())
    for weighting in (first, second):
        weighting.loss(_tasks(1.0, 3.0)).backward()
        weighting.step(lr=0.1)
    assert torch.equal(first.log_variance, second.log_variance)


def test_dwa_weights_follow_the_ratio_of_the_last_two_periods():
    dwa = DynamicWeightAverage(aux_weight=0.5, temperature=2.0, period=2, world=World())
    assert dwa.weights() == []
    for losses in ([4.0, 2.0], [4.0, 2.0], [3.0, 1.0], [1.0, 2.0]):
        dwa.loss(_tasks(*losses))
        assert dwa.weights() == pytest.approx([1.0, 0.5])  # fewer than two periods finished
    assert dwa.periods == 2 and dwa.steps == 0
    assert dwa.means.tolist() == [[4.0, 2.0], [2.0, 1.5]]
    loss = dwa.loss(_tasks(1.0, 3.0))
    # r = (2/4, 1.5/2); w = 2 · softmax(r / 2)
    e_main, e_aux = math.exp(0.25), math.exp(0.375)
    w_main, w_aux = 2 * e_main / (e_main + e_aux), 2 * e_aux / (e_main + e_aux)
    assert dwa.weights() == pytest.approx([w_main, 0.5 * w_aux])
    assert loss.item() == pytest.approx(w_main * 1.0 + 0.5 * w_aux * 3.0)


def test_dwa_gives_the_task_whose_loss_falls_slower_more_weight():
    dwa = DynamicWeightAverage(aux_weight=1.0, temperature=1.0, period=1, world=World())
    dwa.loss(_tasks(1.0, 1.0))
    dwa.loss(_tasks(0.5, 0.9))
    weights = dwa.current_weights(2)
    assert weights[1] > weights[0] and weights.sum().item() == pytest.approx(2.0)


def test_dwa_resumes_in_the_middle_of_a_period():
    losses = [[4.0, 2.0], [3.0, 2.5], [2.0, 2.0], [1.5, 1.0], [1.0, 0.5], [0.9, 0.8], [0.7, 0.7],
              [0.5, 0.6], [0.4, 0.3]]
    whole = DynamicWeightAverage(aux_weight=0.5, temperature=2.0, period=3, world=World())
    for step in losses[:7]:  # two periods and one step of the third
        whole.loss(_tasks(*step))
    state = whole.state_dict()
    assert state["steps"] == 1 and state["periods"] == 2 and set(state) == {
        "steps", "periods", "sums", "means"}
    resumed = DynamicWeightAverage(aux_weight=0.5, temperature=2.0, period=3, world=World())
    resumed.load_state_dict({})  # a fresh state leaves it fresh
    assert resumed.periods == 0 and resumed.sums is None
    resumed.load_state_dict(state)
    for step in losses[7:]:
        assert resumed.loss(_tasks(*step)).item() == whole.loss(_tasks(*step)).item()
        assert resumed.weights() == whole.weights()
    assert whole.periods == 3 and torch.equal(resumed.means, whole.means)
    assert whole.weights() != pytest.approx([1.0, 0.5])


def test_gcs_ema_weights_are_the_clipped_moving_average_of_the_cosines():
    assert SmoothedSimilarity(0.5).state_dict() == {}
    empty = SmoothedSimilarity(0.5)
    empty.load_state_dict({})
    assert empty.average is None
    smoothed = SmoothedSimilarity(decay=0.5)
    assert smoothed.update([torch.tensor(0.4), torch.tensor(-0.2)]) == pytest.approx([0.4, 0.0])
    # 0.5 · (0.4, -0.2) + 0.5 · (-0.4, 0.6)
    assert smoothed.update([torch.tensor(-0.4), torch.tensor(0.6)]) == pytest.approx([0.0, 0.2])
    resumed = SmoothedSimilarity(decay=0.5)
    resumed.load_state_dict(smoothed.state_dict())
    step = [torch.tensor(-1.0), torch.tensor(0.0)]
    assert resumed.update(step) == smoothed.update(step) == pytest.approx([0.0, 0.1])
    assert SmoothedSimilarity(0.0).update(step) == [0.0, 0.0]


@pytest.mark.parametrize("steps_before", [2, 6])  # inside the first period; at a boundary
def test_dwa_resumes_without_the_sums_or_means_it_does_not_have_yet(steps_before):
    losses = [[4.0, 2.0], [3.0, 2.5], [2.0, 2.0], [1.5, 1.0], [1.0, 0.5], [0.9, 0.8],
              [0.7, 0.7], [0.5, 0.6], [0.4, 0.3], [0.3, 0.3]]
    whole = DynamicWeightAverage(aux_weight=0.5, temperature=2.0, period=3, world=World())
    for step in losses[:steps_before]:
        whole.loss(_tasks(*step))
    state = whole.state_dict()
    assert ("means" in state) == (steps_before == 6) and ("sums" in state) == (steps_before == 2)
    resumed = DynamicWeightAverage(aux_weight=0.5, temperature=2.0, period=3, world=World())
    resumed.load_state_dict(state)
    for step in losses[steps_before:]:
        assert resumed.loss(_tasks(*step)).item() == whole.loss(_tasks(*step)).item()
