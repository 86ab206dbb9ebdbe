"""PLE extraction: one level is CGC; stacked levels route through the shared gate."""

from __future__ import annotations

import torch

from malt.layers import Expert, ExtractionNetwork


def _make(levels: int, shared: int = 1, private: int = 1) -> ExtractionNetwork:
    torch.manual_seed(0)
    return ExtractionNetwork(12, ("a", "b"), levels=levels, shared=shared, private=private,
                             make_expert=lambda d: Expert(d, 8, se_group=4), out_dim=8)


def test_one_level_is_cgc():
    net = _make(1)
    x = torch.randn(5, 12)
    level = net.levels[0]
    assert level.shared_gate is None
    out = net(x)
    for t in ("a", "b"):
        g = level.gates[t](x)
        want = g[:, :1] * level.shared[0](x) + g[:, 1:] * level.private[t][0](x)
        torch.testing.assert_close(out[t], want)


def test_stacked_levels_shapes_and_shared_gates():
    net = _make(3, shared=2, private=2)
    assert [lvl.shared_gate is not None for lvl in net.levels] == [True, True, False]
    assert net.levels[1].shared[0].linear.in_features == 8
    assert net.levels[0].shared_gate.linear.out_features == 2 + 2 * 2
    out = net(torch.randn(4, 12))
    assert set(out) == {"a", "b"} and all(v.shape == (4, 8) for v in out.values())


def test_other_tasks_experts_reach_a_task_only_through_a_shared_gate():
    x = torch.randn(4, 12)
    for levels, reaches in ((1, False), (2, True)):
        net = _make(levels)
        before = net(x)["a"]
        with torch.no_grad():
            net.levels[0].private["b"][0].linear.weight.add_(1.0)
        assert torch.allclose(net(x)["a"], before) is not reaches
