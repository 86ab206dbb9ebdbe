"""Towers expose their hidden states; the fused tower follows its formula."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from malt.layers import FusedTower, Tower


def test_tower_hidden_states_and_reference_size():
    tower = Tower(256, (128, 64, 32), 1)
    logits, states = tower(torch.randn(5, 256))
    assert logits.shape == (5, 1) and [s.shape[1] for s in states] == [128, 64, 32]
    assert all((s >= 0).all() for s in states)
    torch.testing.assert_close(logits, tower.out(states[-1]))
    assert sum(p.numel() for p in tower.parameters()) == 43_298 - 33
    assert sum(p.numel() for p in Tower(256, (128, 64, 32), 16).parameters()) == 43_760


def test_fused_tower_formula():
    torch.manual_seed(0)
    tower = FusedTower(12, (8, 4), 1, sources=2)
    h = torch.randn(3, 12)
    knowledge = [[torch.randn(3, 8), torch.randn(3, 4)] for _ in range(2)]
    x = h
    for layer in range(2):
        z = tower.hidden[layer](x)
        fused = torch.cat([z, knowledge[0][layer], knowledge[1][layer]], 1)
        x = F.relu(tower.fusion[layer](fused) + z)
    torch.testing.assert_close(tower(h, knowledge), tower.out(x))
    assert tower.fusion[0].weight.shape == (8, 24)


def test_fusion_layer_sizes_match_the_reference():
    tower = FusedTower(256, (128, 64, 32), 1, sources=4)
    fusion = sum(p.numel() for p in tower.fusion.parameters())
    assert fusion == (128 * 128 * 5 + 128) + (64 * 64 * 5 + 64) + (32 * 32 * 5 + 32)


def test_plain_pass_is_a_tower_without_fusion():
    tower = FusedTower(12, (8, 4), 1, sources=1)
    h = torch.randn(3, 12)
    states = tower.plain(h)
    torch.testing.assert_close(states[0], F.relu(tower.hidden[0](h)))
    torch.testing.assert_close(states[1], F.relu(tower.hidden[1](states[0])))
