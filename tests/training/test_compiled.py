"""`train.compile`: the compiled forward pass trains as the eager one, and falls back to it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from malt.data.batches import DayBatches
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.training.builder import build_run
from malt.training.compiled import CompiledForward
from malt.training.trainer import Trainer
from support.mac_data import write_random_dataset


def _trainer(data: Path, run: Path, *, compile: bool) -> Trainer:
    config = RunConfig.from_dict({
        "seed": 5, "data": {"path": str(data)},
        "task": {"main": "last", "aux": ["first"], "aux_weight": 0.3},
        "train": {"batch_size": 64, "warmup_fraction": 0.0, "lr": 0.01, "compile": compile},
        "model": {"name": "mmoe", "encoder": {"embed_dim": 8, "attention_heads": 2},
                  "expert": {"dim": 16}, "tower": {"dims": [8, 4]}}})
    return Trainer(build_run(config), RunDir(run))


def test_compiled_training_steps_and_predictions_are_the_eager_ones(tmp_path):
    data = write_random_dataset(tmp_path / "data", days=2, rows=200)
    eager = _trainer(data, tmp_path / "eager", compile=False)
    compiled = _trainer(data, tmp_path / "compiled", compile=True)
    assert isinstance(compiled.model.forward, CompiledForward)
    batches = list(DayBatches(eager.train_days[0], 64))[:3]
    for batch in batches:  # row-wise Adam: the lookups' hooks must still run, eagerly
        eager.train_step(batch)
        compiled.train_step(batch)
        eager._advance()
        compiled._advance()
    assert compiled.model.forward.proven and compiled.model.forward.compiled is not None
    # Fused kernels round differently; Adam's normalised steps carry that to ~2e-5 here.
    for (name, p), q in zip(eager.model.named_parameters(), compiled.model.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-4, msg=name)
    first = _trainer(data, tmp_path / "first", compile=False)
    moved = max((p - q).abs().max().item() for p, q in zip(eager.model.parameters(),
                                                           first.model.parameters()))
    assert moved > 1e-2  # the steps did train: equality above is not two untouched models
    eager.model.eval()
    compiled.model.eval()
    with torch.inference_mode():
        for view, p in eager.model.probabilities(batches[0]).items():
            torch.testing.assert_close(compiled.model.probabilities(batches[0])[view], p,
                                       rtol=1e-4, atol=1e-6)


def _failing_compiler(forward):
    def compiled(*args, **kwargs):
        raise RuntimeError("backend failed\nlong trace")
    return compiled


def test_a_failed_compilation_warns_once_and_runs_eagerly(caplog):
    calls = []
    forward = CompiledForward(lambda x: calls.append(x) or x * 2, _failing_compiler)
    with caplog.at_level(logging.WARNING, logger="malt.training.compiled"):
        assert forward(3) == 6 and forward(4) == 8
    assert calls == [3, 4]
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile failed (RuntimeError: backend failed); training eagerly"]


def test_after_a_compiled_call_succeeded_errors_are_raised_not_hidden():
    state = {"fail": False}

    def compiler(forward):
        def compiled(x):
            if state["fail"]:
                raise ValueError("the model's own error")
            return forward(x) + 1
        return compiled

    forward = CompiledForward(lambda x: x * 2, compiler)
    assert forward(3) == 7  # the compiled function, not the eager one
    state["fail"] = True
    with pytest.raises(ValueError, match="the model's own error"):
        forward(3)
