"""Every model, STAR and the models and encoders of other packages included, on a schema with
bags: each bag's table learns, STAR's auxiliary network reads the ad-side bags on every
built-in encoder, and an encoder that does not read bags is refused before anything is built
on it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from malt.data.schema import Bag, CategoricalField, IdSequence, Schema
from malt.data.task import Task
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.layers import FieldInputs
from malt.layers.embedding import pooled_bag
from malt.models import (
    EncoderConfig,
    MaltModel,
    ModelConfig,
    Outputs,
    Traits,
    build_model,
    encoders,
    model_names,
    model_spec,
    register_encoder,
    register_model,
    registry,
)
from malt.models.star import STAR
from models.conftest import loss_values

SCHEMA = Schema(name="tagged", user_column="u", labels=("last", "first"),
                fields=(CategoricalField("city", "user"), CategoricalField("item", "ad"),
                        CategoricalField("slot", "context")),
                id_sequences=(IdSequence("items", "item", 5),),
                bags=(Bag("likes", "user", "sum", 4), Bag("tags", "ad", "mean", 3)),
                embed_dims=(("city", 4), ("likes", 8), ("tags", 12)))
VOCAB = VocabInfo({"city": 5, "item": 20, "slot": 3, "likes": 9, "tags": 7}, {"items": 0})
TASK = Task("last", ("first",))


def bag_batch(rows: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ids, sequences of their own length per row, bags of 0 to their max length."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, 20, (rows, 1, 5), generator=g)
    lengths = torch.randint(0, 6, (rows, 1), generator=g)
    seq = seq.masked_fill(torch.arange(5) >= lengths.unsqueeze(2), 0)
    weights = (torch.rand(rows, 2, generator=g) < 0.3).float()
    return {"sparse": torch.stack([torch.randint(0, n, (rows,), generator=g)
                                   for n in (5, 20, 3)], dim=1),
            "seq": seq,
            "bags": torch.randint(0, 7, (rows, 2, 4), generator=g),
            "bag_lengths": torch.stack([torch.randint(0, 5, (rows,), generator=g),
                                        torch.randint(0, 4, (rows,), generator=g)], dim=1),
            "labels": weights, "weights": weights}


@pytest.fixture
def fresh(monkeypatch):
    """Registries of malt's own models and encoders only, for this test."""
    for registered in (registry.MODELS, encoders.ENCODERS):
        monkeypatch.setattr(registered, "_specs", dict(registered._specs))


def bag_table_gradients(model: MaltModel, batch: dict[str, torch.Tensor]) -> list[float]:
    """|gradient| of each bag table after one backward pass of the model's loss."""
    loss = sum(loss_values(model, model(batch), batch).values())
    loss.backward()
    tables = [p for n, p in model.named_parameters() if ".bag_tables." in n]
    return [p.grad.abs().sum().item() for p in tables]


@pytest.mark.parametrize("name", model_names())
def test_every_model_learns_every_bag_table(name):
    torch.manual_seed(0)
    model = build_model(name, SCHEMA, VOCAB, TASK)
    gradients = bag_table_gradients(model, bag_batch())
    # one pair of tables per encoder (single_task builds one per view)
    assert len(gradients) >= 2 and all(g > 0 for g in gradients)


def test_star_reads_the_ad_bags_in_its_auxiliary_network():
    torch.manual_seed(0)
    star = build_model("star", SCHEMA, VOCAB, TASK)
    assert isinstance(star, STAR)
    # user block: city (4) + likes (8); ad block: item (16) + slot (16) + tags (12)
    assert star.encoder.ad_dim == 44
    seen = {}

    def keep_input(module, args, output) -> None:
        seen["in"] = args[0]

    star.aux.register_forward_hook(keep_input)
    batch = bag_batch()
    x = star.encoder(batch)
    star(batch)
    dim = star.config.encoder.embed_dim
    # task embedding, then the ad block of the fused features, in every path
    torch.testing.assert_close(seen["in"][0, :, dim:], x[:, 12:56])


@pytest.mark.parametrize("encoder", ["dnn", "dcnv2", "din"])
def test_star_on_a_flat_encoder_reads_the_ad_side_embeddings(encoder):
    """Their output mixes the fields, so the block is the ad side's own embeddings: item,
    slot and the ad bag `tags` pooled, in that order."""
    config = model_spec("star").make_config({"encoder": {"name": encoder}})
    torch.manual_seed(0)
    star = STAR(SCHEMA, VOCAB, TASK, config)
    seen = {}
    star.aux.register_forward_hook(lambda module, args, output: seen.update(x=args[0]))
    batch = bag_batch()
    star(batch)
    tables = star.encoder.features.embeddings
    item, slot = (SCHEMA.field_names.index(f) for f in ("item", "slot"))
    tags = SCHEMA.bag_names.index("tags")
    expected = torch.cat([tables.tables[item](batch["sparse"][:, item]),
                          tables.tables[slot](batch["sparse"][:, slot]),
                          pooled_bag(tables.bag_tables[tags], batch["bags"][:, tags],
                                     batch["bag_lengths"][:, tags], True)], dim=1)
    dim = star.config.encoder.embed_dim
    assert star.encoder.ad_dim == 44
    torch.testing.assert_close(seen["x"][1, :, dim:], expected)


def test_star_refuses_an_encoder_without_an_ad_block(fresh):
    register_encoder("pooled", Pooled, PooledConfig)
    config = model_spec("star").make_config({"encoder": {"name": "pooled"}})
    with pytest.raises(ConfigError, match=r"STAR's auxiliary network reads the ad-side "
                                          r"embeddings an encoder gives as `ad_dim` and "
                                          r"`ad_block\(batch, x\)` .*'pooled' has neither"):
        STAR(SCHEMA, VOCAB, TASK, config)


@dataclass(frozen=True)
class IdsOnlyConfig(EncoderConfig):
    name: str = field(default="ids_only", init=False)


class IdsOnly(torch.nn.Module):
    """An encoder of another package that knows only the fields' ids."""

    inputs = ("sparse",)

    def __init__(self, schema, vocab, config):
        super().__init__()
        self.table = torch.nn.Embedding(vocab.sizes[schema.field_names[0]], config.embed_dim)
        self.out_dim = config.embed_dim

    def forward(self, batch):
        return self.table(batch["sparse"][:, 0])

    def embedding_parameters(self):
        return list(self.table.parameters())


@dataclass(frozen=True)
class PooledConfig(EncoderConfig):
    name: str = field(default="pooled", init=False)


class Pooled(torch.nn.Module):
    """An encoder of another package built on `FieldInputs`: bags come with it."""

    def __init__(self, schema, vocab, config):
        super().__init__()
        self.features = FieldInputs(schema, vocab, config.embed_dim)
        self.inputs = self.features.inputs
        self.out_dim = self.features.flat_dim

    def forward(self, batch):
        return self.features.flat(batch)

    def embedding_parameters(self):
        return self.features.embedding_parameters()


def test_an_encoder_that_does_not_read_bags_is_refused_on_a_schema_with_bags(fresh):
    register_encoder("ids_only", IdsOnly, IdsOnlyConfig)
    config = model_spec("mmoe").make_config({"encoder": {"name": "ids_only"}})
    with pytest.raises(ConfigError, match=r"schema 'tagged' has the bags likes, tags, and the "
                                          r"encoder 'ids_only' does not read 'bags' and "
                                          r"'bag_lengths' \(its inputs: sparse\)"):
        build_model("mmoe", SCHEMA, VOCAB, TASK, config)
    without_bags = Schema(name="plain", user_column="u", labels=("last", "first"),
                          fields=SCHEMA.fields)
    assert build_model("mmoe", without_bags, VOCAB, TASK, config).in_dim == 16


def test_an_encoder_of_another_package_on_field_inputs_learns_the_bags(fresh):
    register_encoder("pooled", Pooled, PooledConfig)
    config = model_spec("moae").make_config({"encoder": {"name": "pooled"}})
    torch.manual_seed(0)
    model = build_model("moae", SCHEMA, VOCAB, TASK, config)
    assert {"bags", "bag_lengths"} <= set(model.serving_inputs)
    assert all(g > 0 for g in bag_table_gradients(model, bag_batch()))


class OneHead(MaltModel):
    """A model of another package: one linear head per view on malt's own encoder."""

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        self.view_heads = torch.nn.ModuleDict({v: torch.nn.Linear(self.in_dim, 1)
                                               for v in task.views})

    def heads(self, x):
        return Outputs(logits={v: h(x).squeeze(-1) for v, h in self.view_heads.items()})


def test_a_model_of_another_package_overfits_a_batch_through_its_bags(fresh):
    register_model("one_head", OneHead, ModelConfig, Traits("OneHead", "multi-task"))
    torch.manual_seed(0)
    model = build_model("one_head", SCHEMA, VOCAB, TASK)
    batch = bag_batch(rows=16)
    # the label is whether the row's user bag is non-empty: only the bags carry it
    batch["labels"] = batch["weights"] = (batch["bag_lengths"][:, :1] > 0).float().repeat(1, 2)
    batch["sparse"] = torch.zeros_like(batch["sparse"])
    batch["seq"] = torch.zeros_like(batch["seq"])
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimiser.zero_grad()
        sum(loss_values(model, model(batch), batch).values()).backward()
        optimiser.step()
    with torch.no_grad():
        scores = torch.sigmoid(model(batch).logits["last"])
    assert torch.equal(scores > 0.5, batch["labels"][:, 0] > 0)
