"""Target attention: pinned to torch's multi-head attention; padding mask semantics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from malt.layers import TargetAttention


def _pair(seed: int = 0, query_dim: int = 24, d: int = 16, heads: int = 4):
    torch.manual_seed(seed)
    att = TargetAttention(query_dim, d, heads)
    ref = nn.MultiheadAttention(d, heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(att.in_proj_weight)
        ref.in_proj_bias.copy_(torch.randn(3 * d))
        att.in_proj_bias.copy_(ref.in_proj_bias)
        ref.out_proj.weight.copy_(att.out_proj.weight)
        ref.out_proj.bias.copy_(torch.randn(d))
        att.out_proj.bias.copy_(ref.out_proj.bias)
    return att, ref


def test_matches_torch_multihead_attention_without_and_with_mask():
    att, ref = _pair()
    ad, keys = torch.randn(5, 24), torch.randn(5, 7, 16)
    pad = torch.rand(5, 7) < 0.4
    pad[:, 0] = False
    q = att.query(ad).unsqueeze(1)
    for mask in (None, pad):
        out, weights = att(ad, keys, mask, return_weights=True)
        want, want_w = ref(q, keys, keys, key_padding_mask=mask, average_attn_weights=False)
        torch.testing.assert_close(out, want.squeeze(1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(weights, want_w.squeeze(2), atol=1e-6, rtol=1e-5)


def test_padded_positions_get_zero_weight_and_do_not_change_the_output():
    att, _ = _pair(1)
    ad, keys = torch.randn(4, 24), torch.randn(4, 6, 16)
    pad = torch.tensor([[False, False, True, True, True, True]] * 4)
    out, weights = att(ad, keys, pad, return_weights=True)
    assert torch.all(weights[..., 2:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 4))
    changed = keys.clone()
    changed[:, 2:] = torch.randn(4, 4, 16) * 100
    torch.testing.assert_close(att(ad, changed, pad), out)
    assert not torch.allclose(att(ad, changed, None), att(ad, keys, None))


def test_fully_padded_row_attends_to_nothing_and_stays_finite():
    att, _ = _pair(2)
    ad = torch.randn(3, 24, requires_grad=True)
    keys = torch.randn(3, 5, 16, requires_grad=True)
    pad = torch.zeros(3, 5, dtype=torch.bool)
    pad[1] = True
    out, weights = att(ad, keys, pad, return_weights=True)
    assert torch.all(weights[1] == 0)
    torch.testing.assert_close(out[1], att.out_proj.bias.detach())
    out.sum().backward()
    assert torch.isfinite(keys.grad).all() and torch.isfinite(ad.grad).all()
    assert torch.all(keys.grad[1] == 0)


def test_parameter_count_is_the_reference_one():
    att = TargetAttention(160, 16, 4)
    assert sum(p.numel() for p in att.parameters()) == 160 * 16 + 16 + 3 * 256 + 48 + 256 + 16


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="^dim 16 is not a multiple of heads 3$"):
        TargetAttention(24, 16, 3)
