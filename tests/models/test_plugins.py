"""Models and encoders of other packages: registered by name, found through entry points only
when a name is asked for, and refused with a message naming the plugin when broken."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint

import pytest
import torch

from malt.cli import main
from malt.data.batches import DayBatches
from malt.errors import ConfigError
from malt.models import (
    EncoderConfig,
    MaltModel,
    ModelConfig,
    TargetAttentionConfig,
    Traits,
    encoders,
    model_spec,
    plugins,
    register_encoder,
    register_model,
    registry,
)
from malt.models.plugins import MODEL_GROUP
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.training.builder import build_run
from malt.training.trainer import Trainer


@pytest.fixture
def fresh(monkeypatch):
    """Registries of malt's own models and encoders only, for this test: what it registers
    is gone after it."""
    for registered in (registry.MODELS, encoders.ENCODERS):
        monkeypatch.setattr(registered, "_specs", dict(registered._specs))


def installed(monkeypatch, *entries: tuple[str, str, str]) -> None:
    """Make `(group, name, value)` entry points look installed."""
    found = [EntryPoint(name, value, group) for group, name, value in entries]
    monkeypatch.setattr(plugins, "entry_points",
                        lambda group: [e for e in found if e.group == group])


def plugin_module(monkeypatch, tmp_path, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


class Tiny(MaltModel):
    """A model of a test."""


def test_a_registered_model_is_built_by_name(fresh):
    register_model("tiny", Tiny)
    spec = model_spec("tiny")
    assert (spec.model, spec.config, spec.traits) == (Tiny, ModelConfig, Traits("tiny",
                                                                                "multi-task"))
    assert Tiny.name == "tiny" and spec.source is None
    register_model("tiny", Tiny)  # again: nothing happens

    class Other(MaltModel):
        pass

    with pytest.raises(ValueError, match="'tiny' is already taken"):
        register_model("tiny", Other)


def test_what_is_registered_is_checked(fresh):
    with pytest.raises(ConfigError, match="model name = '../x' becomes part of a file name"):
        register_model("../x", Tiny)
    with pytest.raises(TypeError, match="not a subclass of malt.models.MaltModel"):
        register_model("x", object)
    with pytest.raises(TypeError, match="not a subclass of malt.models.ModelConfig"):
        register_model("x", Tiny, dict)
    with pytest.raises(TypeError, match="traits must be a malt.models.Traits"):
        register_model("x", Tiny, ModelConfig, {"display_name": "X"})


PLUGIN = '''
import malt
from malt.models import MaltModel


class Plugged(MaltModel):
    """A model of a plugin."""


malt.register_model("plugged", Plugged)
'''


def test_a_plugin_is_imported_only_when_its_name_is_asked_for(fresh, monkeypatch, tmp_path):
    plugin_module(monkeypatch, tmp_path, "plugged_module", PLUGIN)
    installed(monkeypatch, (MODEL_GROUP, "plugged", "plugged_module"))
    model_spec("base")
    assert "plugged_module" not in sys.modules
    spec = model_spec("plugged")
    assert spec.model.__module__ == "plugged_module" and spec.source == "plugged_module"


def test_listing_the_models_loads_every_plugin(fresh, monkeypatch, tmp_path):
    plugin_module(monkeypatch, tmp_path, "plugged_module", PLUGIN)
    installed(monkeypatch, (MODEL_GROUP, "plugged", "plugged_module"))
    assert registry.model_names()[-1] == "plugged"


def test_an_unknown_name_names_the_closest_and_where_plugins_come_from(fresh, monkeypatch):
    monkeypatch.delitem(sys.modules, "plugged_module", raising=False)
    installed(monkeypatch, (MODEL_GROUP, "plugged", "plugged_module"))
    with pytest.raises(ConfigError) as error:
        model_spec("pluged")
    message = str(error.value)
    assert "unknown model 'pluged'; did you mean 'plugged'?" in message
    assert "entry point 'pluged' in the group 'malt.models'" in message
    assert "plugged_module" not in sys.modules  # named without importing it


@pytest.mark.parametrize("source,message", [
    ("raise RuntimeError('no GPU here')",
     "the model plugin 'broken = broken_module' (entry-point group 'malt.models') failed to "
     "load: RuntimeError: no GPU here"),
    ("X = 1",
     "the model plugin 'broken = broken_module' loaded but registered no model named 'broken' "
     "(its module must call malt.register_model('broken', ...))"),
])
def test_a_broken_plugin_is_refused_naming_it(fresh, monkeypatch, tmp_path, source, message):
    plugin_module(monkeypatch, tmp_path, "broken_module", source)
    installed(monkeypatch, (MODEL_GROUP, "broken", "broken_module"))
    with pytest.raises(ConfigError) as error:
        model_spec("broken")
    assert str(error.value) == message


def test_the_cli_exits_3_on_a_broken_plugin(fresh, monkeypatch, capsys):
    installed(monkeypatch, (MODEL_GROUP, "broken", "no_such_module_anywhere"))
    assert main(["models"]) == 3
    err = capsys.readouterr().err
    assert "malt models: error: the model plugin 'broken = no_such_module_anywhere'" in err
    assert "ModuleNotFoundError" in err and "Traceback" not in err


def test_two_packages_claiming_one_name_are_refused(fresh, monkeypatch):
    installed(monkeypatch, (MODEL_GROUP, "twin", "first_package"),
              (MODEL_GROUP, "twin", "second_package"))
    with pytest.raises(ConfigError, match="two installed packages register 'twin'"):
        model_spec("twin")


@dataclass(frozen=True)
class TinyEncoderConfig(EncoderConfig):
    name: str = field(default="tiny_encoder", init=False)
    width: int = 3


def test_an_encoder_is_chosen_by_name_and_built_with_its_own_options(fresh):
    register_encoder("tiny_encoder", lambda schema, vocab, config: None, TinyEncoderConfig)
    config = ModelConfig.from_options({"encoder": {"name": "tiny_encoder", "width": 5}})
    assert config.encoder == TinyEncoderConfig(width=5)
    assert config.to_dict()["encoder"]["name"] == "tiny_encoder"
    with pytest.raises(ConfigError, match="model.encoder: unknown key 'attention_heads'"):
        ModelConfig.from_options({"encoder": {"name": "tiny_encoder", "attention_heads": 2}})
    assert isinstance(ModelConfig.from_options().encoder, TargetAttentionConfig)
    # The release's defaults change malt's own encoder only.
    released = ModelConfig.from_options({"encoder": {"name": "tiny_encoder"}},
                                        release_defaults=True)
    assert released.encoder == TinyEncoderConfig() and released.expert.se_group_size == 16
    assert not ModelConfig.from_options(release_defaults=True).encoder.padding_mask


def test_an_encoder_config_must_be_the_one_of_its_name(fresh):
    with pytest.raises(ValueError, match="TinyEncoderConfig.name defaults to 'tiny_encoder'"):
        register_encoder("other_name", lambda schema, vocab, config: None, TinyEncoderConfig)
    with pytest.raises(TypeError, match="not a subclass of malt.models.EncoderConfig"):
        register_encoder("tiny_encoder", lambda schema, vocab, config: None, ModelConfig)
    with pytest.raises(ConfigError, match="unknown encoder 'tiny_encoder'"):
        ModelConfig(encoder=TinyEncoderConfig())  # not registered
    register_encoder("tiny_encoder", lambda schema, vocab, config: None, TinyEncoderConfig)
    assert ModelConfig(encoder=TinyEncoderConfig()).encoder.width == 3
    with pytest.raises(ConfigError, match="model.encoder is a Pretender; the encoder "
                                          "'target_attention' takes a TargetAttentionConfig"):
        ModelConfig(encoder=Pretender())


@dataclass(frozen=True)
class Pretender(EncoderConfig):
    """Says it is malt's own encoder's config, and is not."""

    name: str = field(default="target_attention", init=False)


@dataclass(frozen=True)
class NumericOnlyConfig(EncoderConfig):
    name: str = field(default="numeric_only", init=False)


class NumericOnly(torch.nn.Module):
    """An encoder without embedding tables: the first field's raw id, scaled."""

    inputs = ("sparse",)
    out_dim = 1

    def __init__(self, schema, vocab, config):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, batch):
        return self.scale * batch["sparse"][:, :1].float()

    def embedding_parameters(self):
        return []


def numeric_only_run(data, table_optimizer: str) -> RunConfig:
    """BASE on the `numeric_only` encoder (registered here), trained with `table_optimizer`."""
    register_encoder("numeric_only", NumericOnly, NumericOnlyConfig)
    return RunConfig.from_dict({
        "data": {"path": str(data)}, "task": {"main": "last"},
        "train": {"batch_size": 64, "table_optimizer": table_optimizer},
        "model": {"name": "base", "encoder": {"name": "numeric_only"},
                  "expert": {"dim": 4, "se_group_size": 1, "se_reduction": 1},
                  "tower": {"dims": [4]}}})


def test_an_encoder_without_embedding_tables_trains_under_the_row_table_optimiser(
        fresh, random_mac, tmp_path):
    config = numeric_only_run(random_mac, "rows")
    trainer = Trainer(build_run(config), RunDir(tmp_path / "run"))
    before = trainer.model.encoder.scale.detach().clone()
    trainer.train_step(next(iter(DayBatches(trainer.train_days[0], 64))))
    assert not torch.equal(trainer.model.encoder.scale, before)


def test_the_lazy_table_optimiser_refuses_an_encoder_without_tables(fresh, random_mac):
    config = numeric_only_run(random_mac, "lazy")
    with pytest.raises(ConfigError, match="'lazy' updates embedding tables, and the encoder "
                                          "'numeric_only' has none"):
        build_run(config)
