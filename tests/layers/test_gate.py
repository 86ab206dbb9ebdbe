"""Gates: weights sum to one; mixing; HoME's self-gate."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.layers import SelfGate, SoftmaxGate
from malt.layers.gate import mix


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), scale=st.floats(0.01, 100), seed=st.integers(0, 999))
def test_softmax_gate_weights_sum_to_one(n, scale, seed):
    torch.manual_seed(seed)
    w = SoftmaxGate(10, n)(torch.randn(7, 10) * scale)
    assert w.shape == (7, n) and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(7))


def test_mix_is_the_weighted_sum():
    w = torch.softmax(torch.randn(5, 3), -1)
    experts = [torch.randn(5, 4) for _ in range(3)]
    want = sum(w[:, j:j + 1] * experts[j] for j in range(3))
    torch.testing.assert_close(mix(w, experts), want)


def test_self_gate_is_a_sigmoid_for_one_expert_and_a_softmax_for_several():
    x = torch.randn(6, 8)
    one = SelfGate(8, 1)
    torch.testing.assert_close(one(x), torch.sigmoid(one.linear(x)))
    assert not torch.allclose(one(x), torch.ones(6, 1))
    many = SelfGate(8, 3)
    torch.testing.assert_close(many(x).sum(-1), torch.ones(6))
