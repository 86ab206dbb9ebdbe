"""Warm start: a run that starts from a finished run's model (and, by choice, its optimiser).

The parent is read through the one loader of finished runs (`malt.runs.load.load_run`: JSON and
safetensors only). Its schema, task and model must be this run's (`check_parent` names every
difference). The vocabs grow (`malt.data.vocab_build.grow_vocabs`): ids the parent knows keep
their rows, the ids its days did not hold get rows after them, and each table's
out-of-vocabulary row moves to the table's end. So each embedding table of the new model holds
the parent's rows `0 .. n-1` at the same indices, fresh rows (as the new model initialised
them) for the new ids, and the parent's out-of-vocabulary row last; the optimiser's per-row
state grows alike, with zero moments for the new rows (rows Adam has never moved).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from malt.data.layout import find_layout
from malt.data.schema import Schema, schema_for
from malt.data.vocab import VocabLookup
from malt.data.vocab_build import GrownVocabs, grow_vocabs
from malt.errors import ConfigError
from malt.models.model import MaltModel
from malt.runs.checkpoint import Checkpoint
from malt.runs.config import RunConfig, build_task
from malt.runs.directory import RunDir
from malt.runs.lineage import Parent
from malt.runs.load import TrainedModel, load_run
from malt.training.builder import training_span
from malt.training.optim import Optimisation

ROW_STATES = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "moments", "last_step")
"""Optimiser states with one entry per table row (Adam's, SparseAdam's and `RowAdam`'s)."""
NUMERIC_BUFFERS = ("numeric_shift", "numeric_scale")
"""The model's buffers of the numeric columns' standardisation."""
OPTIMISER_SETTINGS = ("lr", "embedding_lr_scale", "table_optimizer", "grad_method")
"""Train settings that a run taking its parent's optimiser state must share with it."""


@dataclass
class WarmStart:
    """What a warm-started run starts from."""

    parent: TrainedModel
    """The finished parent, with its checkpoint."""
    vocabs: GrownVocabs
    vocab_dir: Path
    """Where the grown vocabs were written for the data set to be prepared with."""

    def record(self, config: RunConfig) -> Parent:
        """What the run's `parent.json` says."""
        assert self.parent.checkpoint is not None
        return Parent(path=str(self.parent.run.path.resolve()),
                      steps=self.parent.checkpoint.state.global_step,
                      optimiser=config.init.optimiser, numeric=config.init.numeric,
                      new_ids=dict(self.vocabs.new_ids))


def plan_warm_start(config: RunConfig, run: RunDir, staging: Path) -> WarmStart:
    """Load the parent `config.init.from_run`, check it against this run, and write the grown
    vocabs of this run's training days into `staging`."""
    assert config.init.from_run is not None
    path = Path(config.init.from_run)
    if path.resolve() == run.path.resolve():
        raise ConfigError(f"--init-from {path}: a run cannot start from itself")
    parent = load_run(path, with_checkpoint=True)
    schema = schema_for(config.data.path, config.data.schema)
    check_parent(parent, schema, config)
    layout = find_layout(config.data.path, vocabs=False)
    span = training_span([p.stem for p in layout.train], config.data, layout.root)
    days = list(layout.train[span.start:span.stop])
    if config.data.eval_split == "validation" and len(days) > config.data.validation_days:
        days = days[:-config.data.validation_days]  # the held-out days add no ids
    tables = {c: lookup for c, lookup in parent.lookups.items()
              if isinstance(lookup, VocabLookup)}
    vocabs = grow_vocabs(tables, days, schema, config.init.min_count)
    vocabs.write(staging)
    return WarmStart(parent, vocabs, staging)


def check_parent(parent: TrainedModel, schema: Schema, config: RunConfig) -> None:
    """Raise a `ConfigError` naming every difference between the parent's schema, task and
    model (and, taking its optimiser, its optimiser's settings) and this run's."""
    differences = _differences(parent.schema.to_dict(), schema.to_dict(), "schema")
    task = build_task(config)
    differences += _differences(dataclasses.asdict(parent.task), dataclasses.asdict(task),
                                "task")
    differences += _differences(_model(parent.config), _model(config), "model")
    if config.init.optimiser:
        differences += [
            f"train.{key}: {getattr(config.train, key)!r} here, "
            f"{getattr(parent.config.train, key)!r} in the parent (its optimiser state is "
            "taken: --init-optimiser)"
            for key in OPTIMISER_SETTINGS
            if getattr(config.train, key) != getattr(parent.config.train, key)]
    if differences:
        raise ConfigError(f"this run cannot start from {parent.run.path}: "
                          + "; ".join(differences))


def _model(config: RunConfig) -> dict[str, Any]:
    """The model a config builds: its name and its resolved config (defaults included, so that
    a default given explicitly is no difference)."""
    resolved = config.model_spec.make_config(config.model_options,
                                             release_defaults=config.model["release_defaults"])
    return {"name": config.model["name"], **dataclasses.asdict(resolved)}


def _differences(parent: Any, own: Any, where: str) -> list[str]:
    """`where.key: <own> here, <parent's> in the parent` for every leaf that differs."""
    if isinstance(parent, dict) and isinstance(own, dict):
        return [d for key in sorted(set(parent) | set(own), key=str)
                for d in _differences(parent.get(key), own.get(key), f"{where}.{key}")]
    if parent != own:
        return [f"{where}: {own!r} here, {parent!r} in the parent"]
    return []


def start_from_parent(model: MaltModel, optimisation: Optimisation, warm: WarmStart,
                      config: RunConfig) -> Checkpoint:
    """The parent's checkpoint fitted to this run: its weights with the tables grown to this
    run's (new rows as `model` initialised them), the numeric statistics the run chose, and
    its optimiser state grown alike. The trainer loads it (`Trainer.start_from`)."""
    parent = warm.parent.checkpoint
    assert parent is not None
    tables = _table_names(model)
    own = model.state_dict()
    weights = {}
    for name, mine in own.items():
        theirs = parent.model.get(name)
        if name.rsplit(".", 1)[-1] in NUMERIC_BUFFERS and config.init.numeric == "refit":
            weights[name] = mine
        elif theirs is None or (theirs.shape != mine.shape and name not in tables):
            raise ConfigError(f"the model of {warm.parent.run.path} does not fit this run: "
                              f"{name} is {None if theirs is None else tuple(theirs.shape)} "
                              f"there, {tuple(mine.shape)} here")
        else:
            weights[name] = _grown(theirs, mine.detach().clone())
    optimisation_state = parent.optimisation
    if config.init.optimiser:
        optimisation_state = _grown_optimisation(optimisation, parent, tables, model)
    return dataclasses.replace(parent, model=weights, optimisation=optimisation_state)


def _table_names(model: MaltModel) -> set[str]:
    tables = {id(p) for p in model.embedding_parameters()}
    return {name for name, p in model.named_parameters() if id(p) in tables}


def _grown(parent: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """`fresh` [R', ...] holding the rows of `parent` [R, ...] (R <= R'): its first R - 1 rows
    at their indices, its last (out-of-vocabulary) row last; `parent` itself when R = R'."""
    if parent.shape == fresh.shape:
        return parent
    if parent.shape[1:] != fresh.shape[1:] or parent.shape[0] > fresh.shape[0]:
        raise ConfigError(f"an embedding table of the parent has shape {tuple(parent.shape)}, "
                          f"this run's {tuple(fresh.shape)}: a table can only gain rows")
    fresh[:parent.shape[0] - 1] = parent[:-1].to(fresh.dtype)
    fresh[-1] = parent[-1].to(fresh.dtype)
    return fresh


def _grown_optimisation(optimisation: Optimisation, parent: Checkpoint, tables: set[str],
                        model: MaltModel) -> dict:
    """The parent's optimiser state with the per-row states of grown tables grown alike (new
    rows: zeros, rows Adam has never moved)."""
    names = {id(p): name for name, p in model.named_parameters()}
    state = parent.optimisation
    grown = []
    for optimizer, saved in zip(optimisation.optimizers, state["optimizers"]):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        order = [i for group in saved["param_groups"] for i in group["params"]]
        per_param = dict(saved["state"])
        for index, param in zip(order, params):
            name = names[id(param)]
            if name not in tables or index not in per_param:
                continue
            rows = parent.model[name].shape[0]
            per_param[index] = {
                key: _grown(value, value.new_zeros((param.shape[0], *value.shape[1:])))
                if key in ROW_STATES and value.dim() and value.shape[0] == rows else value
                for key, value in per_param[index].items()}
        grown.append({**saved, "state": per_param})
    return {**state, "optimizers": grown}
