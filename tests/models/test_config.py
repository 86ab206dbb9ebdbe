"""Model configs: each model's own class, the shared blocks, the release's defaults, validation."""

from __future__ import annotations

import pytest

from malt.config_files import tree_from_dotted_keys
from malt.data import MAC
from malt.data.task import Task
from malt.errors import ConfigError
from malt.models import ModelConfig, build_model, model_names, model_spec


def test_release_defaults():
    default = model_spec("moae").make_config()
    release = model_spec("moae").make_config(release_defaults=True)
    assert default == model_spec("moae").config()
    assert default.encoder.padding_mask and not default.encoder.simtier_count_padding
    assert not default.self_aux
    assert not release.encoder.padding_mask and release.encoder.simtier_count_padding
    assert release.encoder.simtier_combine == "sum" and release.self_aux
    assert release.expert.se_group_size == 16 and default.se_group == 16
    wide = model_spec("mmoe").make_config({"encoder": {"embed_dim": 32}}, release_defaults=True)
    assert wide.se_group == 16 and not hasattr(wide, "self_aux")
    assert model_spec("mmoe").make_config({"encoder": {"embed_dim": 32}}).se_group == 32


def test_every_model_has_its_own_config_class_with_the_shared_blocks():
    for name in model_names():
        config = model_spec(name).make_config()
        assert isinstance(config, ModelConfig) and type(config) is model_spec(name).config
        assert config.encoder.embed_dim == 16 and config.tower.dims == (128, 64, 32)
    assert model_spec("mmoe").make_config().experts == 2
    assert model_spec("moae").make_config().extraction.levels == 1


def test_round_trip_nested_options_and_unknown_keys():
    spec = model_spec("home")
    config = spec.make_config({"tower": {"dims": [64, 32]}, "groups": [["last"], ["first"]]})
    assert config.tower.dims == (64, 32) and config.groups == (("last",), ("first",))
    assert spec.make_config(config.to_dict()) == config
    assert config.updated(tower={"dims": [8]}).tower.dims == (8,)
    assert config.updated(tower={"dims": [8]}).groups == config.groups
    with pytest.raises(ConfigError, match="did you mean 'padding_mask'"):
        spec.make_config({"encoder": {"padding_msk": False}})
    with pytest.raises(ConfigError, match="unknown key 'experts'"):
        model_spec("ple").make_config({"experts": 3})   # MMoE's field, not PLE's
    with pytest.raises(ConfigError, match="model.expert.dim = '8': expected an integer"):
        spec.make_config({"expert": {"dim": "8"}})


def test_dotted_keys_make_a_tree_of_options():
    pairs = {"encoder.embed_dim": 8, "experts": 3, "encoder.padding_mask": 0}
    assert tree_from_dotted_keys(pairs) == {"encoder": {"embed_dim": 8, "padding_mask": 0},
                                            "experts": 3}
    with pytest.raises(ConfigError, match="not a table"):
        tree_from_dotted_keys({"experts": 3, "experts.count": 2})


@pytest.mark.parametrize("name, options, message", [
    ("base", {"encoder": {"embed_dim": 18}}, "multiple of model.encoder.attention_heads"),
    ("base", {"expert": {"se_group_size": 10}}, "multiple of model.expert.se_reduction"),
    ("base", {"encoder": {"embed_dim": 6, "attention_heads": 3}}, "multiple of model.expert"),
    ("base", {"encoder": {"simtier_bins": 31}}, "even"),
    ("base", {"encoder": {"simtier_combine": "mean"}}, "simtier_combine"),
    ("base", {"tower": {"dims": []}}, "tower.dims"),
    ("mmoe", {"experts": 0}, "model.experts"),
    ("ple", {"extraction": {"levels": 0}}, "model.extraction.levels"),
    ("home", {"variant": "v2"}, "model.variant"),
    ("home", {"groups": [["last"], ["last"]]}, "each view once"),
    ("kaml", {"hke_layers": 4}, "hke_layers"),
    ("kaml", {"rlu_gamma": 1.5}, "rlu_gamma"),
    ("taml", {"distill_weight": -1.0}, "distill_weight"),
    ("star", {"aux_dims": [0]}, "aux_dims"),
])
def test_validation(name, options, message):
    with pytest.raises(ConfigError, match=message):
        model_spec(name).make_config(options)


def test_a_model_refuses_another_models_config(vocab):
    with pytest.raises(TypeError, match="MMoEConfig"):
        build_model("mmoe", MAC, vocab, Task("last"), model_spec("ple").make_config())


def test_other_widths_build_and_run(vocab, batch):
    options = {"encoder": {"embed_dim": 8, "attention_heads": 2, "simtier_combine": "concat",
                           "simtier_bins": 16}, "expert": {"dim": 64}, "tower": {"dims": [32, 16]}}
    for name in ("base", "natal", "moae"):
        model = build_model(name, MAC, vocab, Task("last", ("first",)),
                            model_spec(name).make_config(options))
        # D = 19·8 + 2·16 = 184 is a multiple of the SE group (= embed_dim 8).
        assert model.in_dim == 184
        assert model(batch).logits["last"].shape == (64,)


def test_fused_width_not_a_multiple_of_the_group(vocab, batch):
    config = model_spec("shared_bottom").make_config(
        {"expert": {"se_group_size": 16}, "encoder": {"simtier_bins": 8}})   # D = 304 + 8 = 312
    model = build_model("shared_bottom", MAC, vocab, Task("last"), config)
    assert model.in_dim % 16 == 8 and model.bottom.expert.se.n_groups == 20
    assert model(batch).logits["last"].shape == (64,)
