"""Every MAL model on every flat encoder (`dnn`, `dcnv2`, `din`): it trains, the gradient
reaches the encoder, a tiny batch is overfitted (STAR too, on every built-in encoder); bad
options are refused naming the field."""

from __future__ import annotations

import pytest
import torch

from malt.config_files import tree_from_dotted_keys
from malt.data import MAC
from malt.data.task import CAT, Task
from malt.errors import ConfigError
from malt.layers import DCNv2Encoder, DINEncoder, DNNEncoder
from malt.models import DCNv2Config, DINConfig, DNNConfig, ModelConfig, build_model, model_spec
from models.conftest import loss_values

MODELS = ["base", "shared_bottom", "mmoe", "ple", "home", "natal", "moae"]
SMALL = {"dnn": {"hidden_dims": [16]}, "dcnv2": {"cross_layers": 2, "deep_dims": [16]},
         "din": {"attention_dims": [8]}}
"""Narrow options of each encoder."""
LAYERS = {"dnn": DNNEncoder, "dcnv2": DCNv2Encoder, "din": DINEncoder}
TASK = Task("last", ("first", "linear", CAT))


def _model(name: str, encoder: str, vocab, *, narrow: bool = True, **encoder_options):
    """Model `name` on `encoder`, with narrow experts and towers unless told otherwise."""
    spec = model_spec(name)
    task = TASK if spec.traits.uses_aux else Task(TASK.main)
    blocks = {"expert": {"dim": 16}, "tower": {"dims": [8, 4]}} if narrow else {}
    config = spec.make_config({"encoder": {"name": encoder, **encoder_options}, **blocks})
    return build_model(name, MAC, vocab, task, config)


def _total_loss(model, batch) -> torch.Tensor:
    losses = loss_values(model, model(batch), batch)
    main = losses.pop(model.task.main)
    return main + model.task.aux_weight * sum(losses.values())


@pytest.mark.parametrize("encoder", list(SMALL))
@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_on_the_encoder_and_its_gradient_reaches_every_encoder_weight(
        name, encoder, vocab, batch):
    torch.manual_seed(0)
    model = _model(name, encoder, vocab, embed_dim=8, **SMALL[encoder])
    assert isinstance(model.encoder, LAYERS[encoder])
    _total_loss(model, batch).backward()
    silent = [n for n, p in model.encoder.named_parameters()
              if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []
    before = [p.detach().clone() for p in model.encoder.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = _total_loss(model, batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert all(not torch.equal(a, p) for a, p in zip(before, model.encoder.parameters()))


@pytest.mark.parametrize("encoder", list(SMALL))
def test_a_tiny_batch_is_overfitted_on_the_encoder(encoder, vocab, batch):
    torch.manual_seed(0)
    _assert_overfits(_model("base", encoder, vocab, narrow=False), batch)


def _assert_overfits(model, batch) -> None:
    """100 Adam steps on `batch` bring its loss under 0.01 and classify every row right."""
    emb = {id(p) for p in model.embedding_parameters()}
    dense = [p for p in model.parameters() if id(p) not in emb]
    opt = torch.optim.Adam([{"params": dense, "lr": 3e-3},
                            {"params": model.embedding_parameters(), "lr": 3e-2}])
    history = []
    for _ in range(100):
        loss = _total_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.01 < 0.5 < history[0]
    model.eval()
    with torch.inference_mode():
        assert ((model.probabilities(batch)["last"] > 0.5).float() == batch["labels"][:, 0]).all()


def _star(encoder: str, vocab, **blocks):
    """STAR (no Cartesian view) on `encoder` with its narrow options."""
    config = model_spec("star").make_config(
        {"encoder": {"name": encoder, **SMALL.get(encoder, {})}, **blocks})
    return build_model("star", MAC, vocab, Task("last", ("first", "linear")), config)


@pytest.mark.parametrize("encoder", ["target_attention", *SMALL])
def test_star_sits_on_the_encoder_and_its_gradient_reaches_every_parameter(encoder, vocab,
                                                                           batch):
    torch.manual_seed(0)
    model = _star(encoder, vocab, expert={"dim": 16}, tower={"dims": [8, 4]})
    _total_loss(model, batch).backward()
    silent = [n for n, p in model.named_parameters()
              if p.grad is None or not p.grad.abs().sum() > 0]
    assert silent == []
    # the auxiliary network reads the ad side: its first layer's weights past the task
    # embedding get gradient too
    first = next(m for m in model.aux.modules() if isinstance(m, torch.nn.Linear))
    dim = model.config.encoder.embed_dim
    assert first.in_features == dim + model.encoder.ad_dim > dim
    assert first.weight.grad[:, dim:].abs().sum() > 0


@pytest.mark.parametrize("encoder", ["target_attention", *SMALL])
def test_star_overfits_a_tiny_batch_on_the_encoder(encoder, vocab, batch):
    torch.manual_seed(0)
    _assert_overfits(_star(encoder, vocab), batch)


@pytest.mark.parametrize("encoder", list(SMALL))
def test_sparse_embeddings_give_sparse_gradients_on_the_encoder(encoder, vocab, batch):
    model = _model("moae", encoder, vocab, sparse_embeddings=True, **SMALL[encoder])
    _total_loss(model, batch).backward()
    tables = model.embedding_parameters()
    assert len(tables) == len(MAC.fields) and all(t.grad.is_sparse for t in tables)
    assert not any(p.grad.is_sparse for p in model.parameters()
                   if all(p is not t for t in tables))


def test_the_encoder_is_chosen_by_name_as_on_the_command_line():
    config = model_spec("moae").make_config(tree_from_dotted_keys({"encoder.name": "dcnv2",
                                                         "encoder.cross_rank": 8}))
    assert config.encoder == DCNv2Config(cross_rank=8)
    assert ModelConfig.from_options({"encoder": {"name": "din"}}).encoder == DINConfig()
    assert ModelConfig.from_options({"encoder": {"name": "dnn", "dropout": 0.1}},
                                    release_defaults=True).encoder == DNNConfig(dropout=0.1)


def test_the_encoder_options_reach_the_layers(vocab):
    model = _model("base", "dcnv2", vocab, cross_layers=4, cross_rank=3, structure="stacked",
                   deep_dims=[12, 10], activation="gelu")
    encoder = model.encoder
    assert len(encoder.cross.weights) == 4 and encoder.cross.rank == 3
    assert encoder.out_dim == model.in_dim == 10 and not encoder.parallel
    assert isinstance(encoder.deep.layers[1], torch.nn.GELU)
    model = _model("base", "dnn", vocab, hidden_dims=[20, 9], dropout=0.25,
                   activation="prelu", embed_dim=4)
    assert model.in_dim == 9 and model.encoder.features.dim == 4
    assert [type(m).__name__ for m in model.encoder.mlp.layers] == \
        ["Linear", "PReLU", "Dropout", "Linear", "PReLU", "Dropout"]
    assert model.encoder.mlp.layers[2].p == 0.25
    model = _model("base", "din", vocab, attention_dims=[6, 5], attention_activation="sigmoid")
    assert [m.out_features for m in model.encoder.pooling[0].mlp.layers
            if isinstance(m, torch.nn.Linear)] == [6, 5]
    assert len(model.encoder.pooling) == len(MAC.id_sequences)


@pytest.mark.parametrize("options,message", [
    ({"name": "dnn", "hidden_dims": []}, "model.encoder.hidden_dims must list"),
    ({"name": "dnn", "dropout": 1.0},
     r"model.encoder.dropout = 1.0: expected a number in \[0, 1\)"),
    ({"name": "dnn", "activation": "tanh"}, "model.encoder.activation = 'tanh'"),
    ({"name": "dcnv2", "cross_layers": 0}, "model.encoder.cross_layers = 0"),
    ({"name": "dcnv2", "cross_rank": 0}, "model.encoder.cross_rank = 0"),
    ({"name": "dcnv2", "structure": "serial"}, "model.encoder.structure = 'serial'"),
    ({"name": "din", "attention_dims": [0]}, r"model.encoder.attention_dims = \[0\]"),
    ({"name": "din", "attention_activation": "dice"}, "model.encoder.attention_activation"),
    ({"name": "din", "simtier_bins": 3}, "model.encoder.simtier_bins must be even"),
    ({"name": "din", "attention_heads": 2}, "model.encoder: unknown key 'attention_heads'"),
    ({"name": "dcn"}, "unknown encoder 'dcn'; did you mean 'dcnv2'"),
])
def test_bad_encoder_options_are_refused_naming_the_field(options, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_options({"encoder": options})
