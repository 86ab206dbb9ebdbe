"""Trainer helpers the training tests share: a run that stops itself at a chosen step, and a
copy of a trainer's model and optimisation to repeat its step by hand."""

from __future__ import annotations

import copy

from malt.training.optim import Optimisation
from malt.training.trainer import Trainer


def stop_at_step(monkeypatch, step: int):
    """Make every `Trainer` ask to stop (a checkpoint, then `Interrupted`) once its global
    step `step` has been taken (1-based); the train step it replaces, to put back for a
    resume."""
    original = Trainer.train_step

    def stopping_step(self, batch):
        report = original(self, batch)
        if self.state.global_step + 1 == step:
            self.request_stop()
        return report

    monkeypatch.setattr(Trainer, "train_step", stopping_step)
    return original


def reference_optimisation(trainer: Trainer):
    """A copy of the trainer's model and a fresh optimisation of it in the same state."""
    model = copy.deepcopy(trainer.model)
    optimisation = Optimisation(model, model.embedding_parameters(), trainer.config.train,
                                trainer.total_steps,
                                sparse_tables=trainer.config.sparse_table_gradients())
    optimisation.load_state_dict(trainer.optimisation.state_dict())
    return model, optimisation
