"""Squeeze-excitation (incl. partial groups), feature gate and expert variants."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.layers import Expert, FeatureGate, SqueezeExcite


def _reference_se(layer: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    """Loop over groups: mean of each position over the groups that hold it."""
    g, d = layer.group, layer.dim
    groups = [x[:, s:s + g] for s in range(0, d, g)]
    columns = []
    for j in range(g):
        holders = [grp[:, j] for grp in groups if grp.shape[1] > j]
        columns.append(sum(holders, torch.zeros(len(x))) / max(1, len(holders)))
    z = torch.stack(columns, dim=1)
    w = torch.sigmoid(F.linear(F.relu(F.linear(z, layer.down.weight)), layer.up.weight))
    return torch.cat([grp * w[:, : grp.shape[1]] for grp in groups], dim=1)


@settings(max_examples=25, deadline=None)
@given(dim=st.integers(4, 70), group=st.sampled_from([4, 8, 16]), seed=st.integers(0, 999))
def test_squeeze_excitation_matches_a_loop(dim, group, seed):
    torch.manual_seed(seed)
    layer = SqueezeExcite(dim, group, 4)
    x = torch.randn(3, dim)
    torch.testing.assert_close(layer(x), _reference_se(layer, x), atol=1e-6, rtol=1e-5)


def test_squeeze_excitation_reference_size():
    layer = SqueezeExcite(336, 16, 4)
    assert layer.n_groups == 21
    assert sum(p.numel() for p in layer.parameters()) == 128


def test_feature_gate_formula_and_size():
    gate = FeatureGate(336, 4)
    x = torch.randn(5, 336)
    want = x * 2 * torch.sigmoid(x @ gate.down.weight.T @ gate.up.weight.T)
    torch.testing.assert_close(gate(x), want)
    assert sum(p.numel() for p in gate.parameters()) == 2 * 336 * 4


def test_reference_expert_size_and_relu_output():
    expert = Expert(336, 256, se_group=16)
    assert sum(p.numel() for p in expert.parameters()) == 86_400
    assert (expert(torch.randn(8, 336)) >= 0).all()


def test_normalised_swish_expert():
    expert = Expert(32, 24, norm=True, activation="swish", feature_gate_rank=4)
    y = expert(torch.randn(64, 32) * 5 + 3)
    pre = expert.norm(expert.linear(expert.feature_gate(torch.randn(64, 32))))
    assert y.shape == (64, 24) and (y < 0).any()          # Swish, not ReLU
    torch.testing.assert_close(pre.mean(0), torch.zeros(24), atol=1e-5, rtol=0)
    assert expert.se is None


def test_normalised_expert_accepts_a_single_training_row():
    expert = Expert(8, 4, norm=True, activation="swish")
    expert(torch.randn(16, 8))
    stats = expert.norm.running_mean.clone()
    one = expert(torch.randn(1, 8))
    assert one.shape == (1, 4) and torch.isfinite(one).all()
    assert torch.equal(expert.norm.running_mean, stats)
