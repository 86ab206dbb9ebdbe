"""Which preset and which model defaults a study runs: the release's on the MAC layout (the
papers' presets), malt's own and the `own-data` preset on data with a schema of its own."""

from __future__ import annotations

from dataclasses import replace

import pytest

from malt.data.schema import MAC, CategoricalField, Schema
from malt.errors import ConfigError
from malt.experiments.engine import open_study, own_schema, study_out, with_preset
from malt.experiments.options import StudyOptions
from malt.experiments.presets import PRESETS
from malt.experiments.search import Setting
from malt.experiments.study import Variant
from malt.sources.simulate.app_promotion import schema_dict
from support.mac_data import write_random_dataset

SHOP = Schema(name="shop-logs", user_column="buyer",
              fields=(CategoricalField("city", "user"), CategoricalField("sku", "ad")),
              labels=("buy", "cart"))
SHOP_TOML = """name = "shop-logs"
user_column = "buyer"
labels = ["buy", "cart"]
[fields]
user = ["city"]
ad = ["sku"]
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """Two training days and a test day of a foreign schema, with its `schema.toml`."""
    root = write_random_dataset(tmp_path_factory.mktemp("own") / "shop", SHOP, rows=80)
    (root / "schema.toml").write_text(SHOP_TOML)
    return root


@pytest.fixture(scope="module")
def mac(tmp_path_factory):
    return write_random_dataset(tmp_path_factory.mktemp("mac") / "mac", rows=80)


def test_a_schema_of_ones_own_is_told_from_the_releases_and_the_simulators():
    assert own_schema(SHOP)
    assert not own_schema(MAC)
    assert not own_schema(replace(MAC, name="renamed", ignore_columns=("note",)))
    assert not own_schema(Schema.from_dict(schema_dict()))
    assert own_schema(replace(MAC, labels=("last", "first")))


def test_the_default_preset_is_own_data_on_a_schema_of_ones_own(shop, mac, tmp_path):
    said: list[str] = []
    chosen = with_preset(StudyOptions(names=("main",), data=shop), said.append)
    assert chosen.preset == "own-data" and len(said) == 1 and "`own-data`" in said[0]
    assert study_out(chosen, "mac").as_posix() == "studies/own-data"
    assert with_preset(StudyOptions(names=("main",), data=mac), said.append).preset == "smoke"
    assert with_preset(StudyOptions(names=("main",)), said.append).preset == "smoke"
    named = StudyOptions(names=("main",), data=shop, preset="paper")
    assert with_preset(named, said.append).preset == "paper" and len(said) == 1
    with pytest.raises(ConfigError, match="expected one of .*'own-data'"):
        StudyOptions(names=("main",), preset="own")


def test_own_data_is_malts_own_model_and_a_grid_over_three_seeds():
    setup = PRESETS["own-data"].mac
    assert setup.model == {} and setup.train == {} and setup.seeds == 3
    assert len(setup.lrs) * len(setup.aux_weights) > 1  # settings chosen on validation
    assert all(p.mac.model.get("release_defaults") for name, p in PRESETS.items()
               if name != "own-data")


def _model_of(study, model="moae"):
    config = study.config(Variant(model, study.labels[0], study.labels[1:], Setting(1e-2)),
                          seed=1)
    return config.model, config.model_config()


@pytest.mark.parametrize("preset", ["smoke", "paper"])
def test_a_papers_preset_drops_the_releases_quirks_on_a_schema_of_ones_own(shop, mac, tmp_path,
                                                                          preset):
    said: list[str] = []
    own = open_study(StudyOptions(names=("main",), data=shop, preset=preset,
                                  out=tmp_path / "own"), "mac", said.append)
    tree, config = _model_of(own)
    assert tree["release_defaults"] is False
    assert config.encoder.padding_mask and not config.encoder.simtier_count_padding
    assert own.preset == f"{preset}, malt's model defaults"
    assert f"preset `{preset}` on schema 'shop-logs': malt's model defaults" in said
    assert own.notes()[0].startswith(f"Preset `{preset}, malt's model defaults`")

    on_mac = open_study(StudyOptions(names=("main",), data=mac, preset=preset,
                                     out=tmp_path / "mac"), "mac", said.append)
    tree, config = _model_of(on_mac)
    assert tree["release_defaults"] is True and not config.encoder.padding_mask
    assert on_mac.preset == preset
    assert said[-1].startswith(f"preset `{preset}` on schema 'mac': the release's model "
                               "defaults")
