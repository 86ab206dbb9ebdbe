"""SimTier: tier boundaries, counts against a loop, padding and channel combination."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.layers import SimTier


def _loop_counts(scores: np.ndarray, bins: int, keep: np.ndarray | None) -> np.ndarray:
    b, c, length = scores.shape
    out = np.zeros((b, c, bins))
    for i in range(b):
        for j in range(c):
            for p in range(length):
                if keep is not None and not keep[i, p]:
                    continue
                s = min(max(float(scores[i, j, p]), -0.999), 0.999)   # the reference's clamp
                out[i, j, math.floor(s * bins / 2) + bins // 2] += 1
    return out


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), bins=st.sampled_from([2, 8, 32]), masked=st.booleans())
def test_counts_match_a_loop(seed, bins, masked):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(-1.2, 1.2, (3, 2, 9)).astype(np.float32)
    scores[0, 0, :4] = [-1.0, 1.0, 0.0, 0.999]
    keep = rng.random((3, 9)) < 0.7 if masked else None
    layer = SimTier(2, bins)
    got = layer.counts(torch.from_numpy(scores), None if keep is None else torch.from_numpy(keep))
    np.testing.assert_array_equal(got.numpy(), _loop_counts(scores, bins, keep))


def test_tier_edges_are_the_reference_ones():
    layer = SimTier(1, 32)
    scores = torch.tensor([-1.0, -0.9999, -1 / 16, 0.0, 1 / 16 - 1e-6, 0.999, 1.0, 3.0])
    assert layer.tier_index(scores).tolist() == [0, 0, 15, 16, 16, 31, 31, 31]


def test_output_is_log2_count_times_tier_value_summed_or_concatenated():
    scores = torch.rand(4, 2, 20) * 2 - 1
    pad = torch.zeros(4, 20, dtype=torch.bool)
    pad[:, 15:] = True
    summed = SimTier(2, 32, "sum")
    concat = SimTier(2, 32, "concat")
    with torch.no_grad():
        concat.tiers.copy_(summed.tiers)
    counts = summed.counts(scores, ~pad)
    want = torch.log2(1 + counts) * summed.tiers
    torch.testing.assert_close(summed(scores, pad), want.sum(1))
    torch.testing.assert_close(concat(scores, pad), want.flatten(1))
    assert summed.out_dim == 32 and concat.out_dim == 64
    assert counts.sum().item() == 4 * 2 * 15
    assert summed.counts(scores).sum().item() == 4 * 2 * 20


def test_only_the_tier_values_learn():
    layer = SimTier(2, 32)
    scores = (torch.rand(3, 2, 20) * 2 - 1).requires_grad_()
    layer(scores).sum().backward()
    assert scores.grad is None
    assert layer.tiers.grad is not None and layer.tiers.grad.abs().sum() > 0
