"""Training under `--precision bf16`: the step runs its forward pass under bfloat16 autocast and
its losses in float32, a bf16 model learns, and a bf16 run ends near the float32 run.

How near: bfloat16 keeps 8 significant bits, so each product's inputs are rounded by up to 2^-9
(0.2 %) of their size. On these small models a score moves by about a thousandth per forward
pass; over a run Adam amplifies the rounding where a gradient is near zero (its step is about
lr whatever the gradient's size), and the runs below end 2-3 thousandths apart in their scores.
A tolerance of 0.02 leaves room for other CPUs' kernels and still fails a run that diverged
(NaN) or scored other rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from malt.data.batches import DayBatches
from malt.eval.predictions import Predictions
from malt.jobs.train import train_run
from malt.precision import as_float32
from malt.runs.checkpoint import load_checkpoint
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.training.builder import build_run
from malt.training.trainer import Trainer
from support.mac_data import write_random_dataset
from support.training_steps import reference_optimisation

RUN_TOLERANCE = 0.02
"""Largest score difference of a bf16 run from the float32 run (see the module's docstring)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("bf16") / "data", days=4, rows=301)


def _config(data: Path, model: str = "moae", aux=("first", "cat"), **train) -> RunConfig:
    return RunConfig.from_dict({
        "seed": 7, "data": {"path": str(data)},
        "task": {"main": "last", "aux": list(aux)},
        "train": {"batch_size": 64, "log_every": 2, **train},
        "model": {"name": model, "encoder": {"embed_dim": 8, "attention_heads": 2},
                  "expert": {"dim": 16}, "tower": {"dims": [8, 4]}},
    })


def _first_batch(trainer: Trainer) -> dict:
    return next(iter(DayBatches(trainer.train_days[0], trainer.config.train.batch_size)))


def test_a_bf16_step_is_adam_on_the_float32_losses_of_a_bf16_forward(data, tmp_path):
    trainer = Trainer(build_run(_config(data, precision="bf16")), RunDir(tmp_path / "run"))
    batch = _first_batch(trainer)
    model, optimisation = reference_optimisation(trainer)
    fp32_model, fp32_optimisation = reference_optimisation(trainer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(batch)
    assert outputs.logits["last"].dtype == torch.bfloat16  # the forward really ran in bf16
    terms = model.loss_terms(as_float32(outputs), batch)
    assert terms["last"].value.dtype == torch.float32
    terms.total(trainer.task.aux_weight).backward()
    optimisation.step()
    fp32_model.loss_terms(fp32_model(batch), batch).total(trainer.task.aux_weight).backward()
    fp32_optimisation.step()

    trainer.train_step(batch)
    for (name, p), q, r in zip(trainer.model.named_parameters(), model.parameters(),
                               fp32_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
        assert p.dtype == torch.float32, name  # the parameters and Adam stay float32
    assert any(not torch.equal(p, r) for p, r in zip(trainer.model.parameters(),
                                                      fp32_model.parameters()))


@pytest.mark.parametrize("model, aux", [("base", ()), ("moae", ("first", "cat"))])
def test_a_bf16_model_overfits_a_batch_as_the_float32_model_does(data, tmp_path, model, aux):
    final = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(build_run(_config(data, model, aux, precision=precision, lr=0.01,
                                            warmup_fraction=0.0, log_every=1)),
                          RunDir(tmp_path / precision))
        batch = _first_batch(trainer)
        losses = [trainer.train_step(batch).losses["last"] for _ in range(20)]
        final[precision] = (losses[0], losses[-1])
    first, last = final["bf16"]
    assert np.isfinite([first, last]).all()
    assert last < 0.2 * first  # it learns the batch
    # The memorised loss shrinks geometrically, so the rounding moves where it ends by a few
    # percent (3-5 % here); a bf16 path that did not learn would stay near its first loss.
    assert last == pytest.approx(final["fp32"][1], rel=0.25)


@pytest.mark.parametrize("model, aux", [("base", ()), ("moae", ("first", "cat"))])
def test_a_bf16_run_scores_close_to_the_float32_run_and_records_its_precision(
        data, tmp_path, model, aux):
    metrics = {p: train_run(_config(data, model, aux, precision=p), tmp_path / p)
               for p in ("fp32", "bf16")}
    probs = {p: Predictions.load(tmp_path / p / "predictions.npz").probs for p in metrics}
    assert np.isfinite(probs["bf16"]).all()
    np.testing.assert_allclose(probs["bf16"], probs["fp32"], rtol=0, atol=RUN_TOLERANCE)
    tables = {p: load_checkpoint(tmp_path / p / "checkpoint.safetensors").model
              for p in metrics}
    assert any(not torch.equal(tables["bf16"][k], tables["fp32"][k]) for k in tables["fp32"])
    saved = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert saved["train"]["precision"] == "bf16"


def test_a_bf16_run_gives_the_same_bits_again(data, tmp_path):
    for name in ("first", "again"):
        train_run(_config(data, precision="bf16"), tmp_path / name)
    np.testing.assert_array_equal(Predictions.load(tmp_path / "again" / "predictions.npz").probs,
                                  Predictions.load(tmp_path / "first" / "predictions.npz").probs)
