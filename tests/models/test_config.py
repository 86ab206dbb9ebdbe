"""ModelConfig: presets, validation, (de)serialisation."""

from __future__ import annotations

import pytest

from malt.data import MAC
from malt.data.task import Task
from malt.errors import ConfigError
from malt.models import ModelConfig, build_model


def test_presets():
    default, reference = ModelConfig.preset("default"), ModelConfig.preset("reference")
    assert default == ModelConfig()
    assert default.padding_mask and not default.simtier_count_padding and not default.self_aux
    assert not reference.padding_mask and reference.simtier_count_padding
    assert reference.simtier_combine == "sum" and reference.self_aux
    assert reference.se_group_size == 16 and default.se_group == 16
    assert ModelConfig.preset("reference", embed_dim=32).se_group == 16
    assert ModelConfig(embed_dim=32).se_group == 32
    with pytest.raises(ConfigError, match="preset"):
        ModelConfig.preset("fast")


def test_round_trip_and_unknown_keys():
    config = ModelConfig(tower_dims=[64, 32], home_groups=[["last"], ["first"]])
    assert config.tower_dims == (64, 32) and config.home_groups == (("last",), ("first",))
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="did you mean 'padding_mask'"):
        ModelConfig.from_dict({"padding_msk": False})
    with pytest.raises(ConfigError, match="did you mean 'expert_dim'"):
        ModelConfig().updated(expert_dims=128)


@pytest.mark.parametrize("kwargs,message", [
    ({"embed_dim": 18}, "multiple of model.attention_heads"),
    ({"se_group_size": 10}, "multiple of model.se_reduction"),
    ({"embed_dim": 6, "attention_heads": 3}, "multiple of model.se_reduction"),
    ({"simtier_bins": 31}, "even"),
    ({"simtier_combine": "mean"}, "simtier_combine"),
    ({"tower_dims": ()}, "tower_dims"),
    ({"mmoe_experts": 0}, "mmoe_experts"),
    ({"home_variant": "v2"}, "home_variant"),
    ({"home_groups": (("last",), ("last",))}, "each view once"),
])
def test_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**kwargs)


def test_other_widths_build_and_run(vocab, batch):
    config = ModelConfig(embed_dim=8, attention_heads=2, simtier_combine="concat",
                         expert_dim=64, tower_dims=(32, 16), simtier_bins=16)
    for name in ("base", "natal", "moae"):
        model = build_model(name, MAC, vocab, Task("last", ("first",)), config)
        # D = 19·8 + 2·16 = 184 is a multiple of the SE group (= embed_dim 8).
        assert model.in_dim == 184
        assert model(batch).logits["last"].shape == (64,)


def test_fused_width_not_a_multiple_of_the_group(vocab, batch):
    config = ModelConfig(se_group_size=16, simtier_bins=8)       # D = 304 + 8 = 312
    model = build_model("shared_bottom", MAC, vocab, Task("last"), config)
    assert model.in_dim % 16 == 8 and model.expert.se.n_groups == 20
    assert model(batch).logits["last"].shape == (64,)
