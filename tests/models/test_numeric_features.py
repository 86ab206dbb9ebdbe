"""Every model reads the numeric columns through its encoder, and learns from them."""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pyarrow as pa
import pytest
import torch

from malt.data import MAC, Schema
from malt.data.layout import day_path, write_day, write_vocab
from malt.data.schema import NumericField
from malt.data.task import Task
from malt.eval.predictions import Predictions
from malt.eval.rescore import rescore
from malt.jobs.train import train_run
from malt.models import build_model, model_names
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from models.conftest import loss_values, random_batch, small_vocab

NUMERIC_MAC = dataclasses.replace(MAC, numeric=(NumericField("price"),
                                                NumericField("clicks", "log1p")))


@pytest.mark.parametrize("name", model_names())
def test_every_model_widens_its_features_by_one_per_numeric_column(name):
    task = Task("last", ("first",))
    vocab = dataclasses.replace(small_vocab(), numeric={"price": (500.0, 100.0),
                                                        "clicks": (0.0, 1.0)})
    torch.manual_seed(0)
    plain = build_model(name, MAC, small_vocab(), task)
    torch.manual_seed(0)
    model = build_model(name, NUMERIC_MAC, vocab, task)
    assert model.in_dim == plain.in_dim + 2
    batch = random_batch()
    batch["numeric"] = torch.tensor([[600.0, np.e - 1]]).repeat(64, 1)
    np.testing.assert_allclose(model.encoder.numeric(batch["numeric"][:1]).numpy(),
                               [[1.0, 1.0]], rtol=1e-6)
    loss = sum(loss_values(model, model(batch), batch).values())
    loss.backward()
    first_layer = [p for n, p in model.named_parameters() if p.grad is not None
                   and p.ndim == 2 and p.shape[-1] == model.in_dim]
    # the numeric columns are the last two inputs of the layers that read the fused features
    assert first_layer and all(p.grad[:, -2:].abs().sum() > 0 for p in first_layer)
    state = model.state_dict()
    assert state["encoder.numeric_shift"].tolist() == [500.0, 0.0]


SCHEMA = """
user_column = "uid"
labels = ["y"]
{numeric}
[fields]
user = ["age"]
ad = ["item"]
"""


def write_price_data(root, rows=3000, days=4, seed=0):
    """The label depends on the price only: P(y) = sigmoid(3 (price - 500) / 100)."""
    rng = np.random.default_rng(seed)
    for d in range(days):
        price = rng.normal(500, 100, rows)
        y = rng.random(rows) < 1 / (1 + np.exp(-3 * (price - 500) / 100))
        write_day(day_path(root, "test" if d == days - 1 else "train", d), pa.table({
            "uid": pa.array(rng.integers(0, 300, rows)), "age": pa.array(rng.integers(0, 5, rows)),
            "item": pa.array(rng.integers(0, 20, rows)), "price": pa.array(price),
            "y": pa.array(y.astype(np.float32))}))
    write_vocab(root / "vocabs", "uid", [str(i) for i in range(300)])
    write_vocab(root / "vocabs", "age", [str(i) for i in range(5)])
    write_vocab(root / "vocabs", "item", [str(i) for i in range(20)])
    return root


@pytest.mark.parametrize("declared, check", [
    (True, lambda auc: auc >= 0.8),
    (False, lambda auc: abs(auc - 0.5) < 0.05),
])
def test_a_label_that_depends_on_a_number_is_learned_only_with_the_column(
        tmp_path_factory, tmp_path, declared, check):
    root = write_price_data(tmp_path_factory.mktemp("price") / "d")
    line = 'numeric = ["price"]' if declared else 'ignore_columns = ["price"]'
    schema = tmp_path / "s.toml"
    schema.write_text(textwrap.dedent(SCHEMA.format(numeric=line)))
    assert bool(Schema.load(schema).numeric) is declared
    config = RunConfig.from_dict({
        "seed": 1, "data": {"path": str(root), "schema": str(schema)},
        "task": {"main": "y"}, "train": {"batch_size": 64, "lr": 1e-2},
        "model": {"name": "base", "encoder": {"embed_dim": 4},
                  "expert": {"dim": 16}, "tower": {"dims": [8]}}})
    metrics = train_run(config, tmp_path / "run")
    assert check(metrics.views["y"].auc), metrics.views["y"].auc
    if declared:  # re-scoring takes the standardisation from the checkpoint, not the data
        run = RunDir(tmp_path / "run")
        again = rescore(run, root)
        np.testing.assert_array_equal(again.probs, Predictions.load(run.predictions_file).probs)
