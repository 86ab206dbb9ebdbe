"""Build once, then run: a `RunConfig` turned into the objects a run works with.

`build_run` opens the data set, splits its days, makes the task and the label-mask policy,
builds the model, its optimisation, the process world and device; the trainer, the job that
evaluates a run, re-scoring and the studies receive these objects and never read configuration.
The steps are also offered one by one (`open_dataset`, `split_days`, `build_model`; the task
is `malt.runs.config.build_task`) for the code that needs only some of them.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from malt.data.as_of import check_days_as_of, check_days_delay_correction
from malt.data.cache import Dataset, Day, open_prepared, prepare
from malt.data.masks import AdmOptions, MaskPolicy, coverage
from malt.data.numeric import Moments, standardisation
from malt.data.schema import Schema, schema_for
from malt.data.task import Task
from malt.errors import ConfigError, DataError
from malt.models.building import build_spec
from malt.models.model import MaltModel
from malt.precision import check_precision
from malt.runs.config import DataConfig, RunConfig, TaskConfig, build_task
from malt.training.aggregation import AGGREGATORS, check_available
from malt.training.compiled import compile_forward
from malt.training.distributed import (
    World,
    device_for,
    failed_ranks,
    init_world,
    launched_world_size,
    resolve_device,
    waiting_group,
)
from malt.training.optim import Optimisation
from malt.training.steps import StepPlan, auto_batch_size


@dataclass
class BuiltRun:
    """Everything one training run works with."""

    config: RunConfig
    """The run's config with its batch size resolved (never `auto`)."""
    dataset: Dataset
    train_days: list[Day]
    eval_days: list[Day]
    task: Task
    masks: MaskPolicy
    coverage: dict[str, dict[str, float]] | None
    """Share of training rows each action trains on under the mask (rank 0, masked runs)."""
    model: MaltModel
    net: nn.Module
    """The model as the steps call it: wrapped for DDP in a multi-process world."""
    optimisation: Optimisation
    plan: StepPlan
    """One pass: batch size, rows, days and optimiser steps."""
    world: World
    device: torch.device
    first_day: int = 0
    """Index of the first training day among the data set's (it seeds each day's shuffle, so
    a run from a later day shuffles that day as a run from the first does)."""


def open_dataset(data: DataConfig, world: World = World(), vocab_dir: Path | None = None
                 ) -> Dataset:
    """The prepared data set of `data` (cached; see `malt.data.cache`), its ids looked up in
    its own vocabs or in `vocab_dir`'s.

    In a world of several processes every rank calls it and the data is prepared once per
    cache, in three turns that every rank waits out: global rank 0 prepares (a cache the nodes
    share is built there, once); then the local rank 0 of every other node (it finds a shared
    cache complete and converts nothing, or builds its node's own cache); then the other ranks
    open their node's finished cache read-only. When a rank fails in a turn, it raises its
    error and every other rank a `DataError` that names it.
    """
    if data.path is None:
        raise ConfigError("no data: pass --data DIR (a directory in the MAC layout)")
    schema = schema_for(data.path, data.schema)
    if not world.distributed:
        return prepare(data.path, schema, data.cache, vocab_dir=vocab_dir)

    def build() -> Dataset:
        return prepare(data.path, schema, data.cache, vocab_dir=vocab_dir)

    def read() -> Dataset:
        return open_prepared(data.path, schema, data.cache, vocab_dir=vocab_dir)

    turns = [(world.rank == 0, build), (world.local_rank == 0 and not world.is_main, build),
             (world.local_rank != 0, read)]
    dataset = None
    with waiting_group() as group:
        for mine, work in turns:
            failure = None
            if mine:
                try:
                    dataset = work()
                except Exception as error:  # reported to the others before it is raised
                    failure = error
            failed = failed_ranks(failure is not None, group)
            if failure is not None:
                raise failure
            if failed:
                raise DataError(f"rank {failed[0]} failed to prepare the data set: see that "
                                "rank's error")
    return dataset


def training_days(dataset: Dataset, data: DataConfig) -> list[Day]:
    """The training days `data` selects: all, or `train_days` of them from `train_from` on,
    which the data set must have."""
    span = training_span([d.name for d in dataset.train], data, dataset.root)
    return dataset.train[span.start:span.stop]


def training_span(names: list[str], data: DataConfig, root: Path) -> range:
    """Indices of the training days `data` selects among the training days `names` (in time
    order) of the data set at `root`: from `train_from` (a day's name, else an index) on, all
    or `train_days` of them; refused when the data set has fewer."""
    present = len(names)
    first = 0
    if data.train_from is not None:
        first = day_index(names, data.train_from, root)
    if data.train_days is None:
        return range(first, present)
    if first + data.train_days > present:
        where = "" if not first else f" from day {first} ({names[first]}) on"
        raise ConfigError(f"data.train_days = {data.train_days}, but {root} has "
                          f"{present - first} training day{'' if present - first == 1 else 's'}"
                          f"{where} (train/*.parquet): pass at most {present - first}")
    return range(first, first + data.train_days)


def day_index(names: list[str], day: str, root: Path, key: str = "data.train_from") -> int:
    """The index of the training day `day` among `names`: the day of that name, else `day`
    read as an index; `key` names the setting in the refusal."""
    if day in names:
        return names.index(day)
    if day.isdigit() and int(day) < len(names):
        return int(day)
    shown = ", ".join(names[:3]) + (f" ... {names[-1]}" if len(names) > 3 else "")
    raise ConfigError(f"{key} = '{day}' is neither the name of a training day of "
                      f"{root} ({shown or 'none'}) nor an index below {len(names)}")


def split_days(dataset: Dataset, data: DataConfig) -> tuple[list[Day], list[Day]]:
    """(training days, evaluation days) under the configured protocol; refused when the data
    set has fewer days than asked for, or none to train on."""
    train = training_days(dataset, data)
    if data.eval_split == "validation":
        held = data.validation_days
        if len(train) <= held:
            raise ConfigError(f"data.validation_days = {held}: the validation protocol needs "
                              f"at least {held + 1} training days, and {dataset.root} has "
                              f"{len(train)}{'' if data.train_days is None else ' selected'}")
        train, evaluated = train[:-held], train[-held:]
    else:
        evaluated = test_days(dataset)
    if not train:  # (days of no row are refused by `prepare`)
        raise DataError(f"{dataset.root} has no training day (train/*.parquet): nothing to "
                        "train on")
    check_days_as_of(train, data.as_of_seconds)
    return train, evaluated


def test_days(dataset: Dataset) -> list[Day]:
    """The data set's test days; refused when it has none."""
    if not dataset.test:
        raise ConfigError(f"{dataset.root} has no test day (test/*.parquet)")
    return dataset.test


def evaluation_days(dataset: Dataset, data: DataConfig) -> list[Day]:
    """The days a run of `data` is scored on (its test days, or its held-out training days);
    the training days need not hold rows here (a data set of test days only scores too)."""
    if data.eval_split == "validation":
        return split_days(dataset, data)[1]
    return test_days(dataset)


def adm_options(task: TaskConfig) -> AdmOptions:
    return AdmOptions(window=task.adm_window, window_days=task.adm_window_days,
                      alpha=task.adm_alpha, alpha_per_action=dict(task.adm_alpha_per_action))


def build_model(config: RunConfig, dataset: Dataset, task: Task,
                train_days: list[Day] | None = None, device_type: str = "cpu") -> MaltModel:
    """The model named in `config.model`, its options applied to its config class, to train on
    `device_type`; numeric columns are standardised with the moments of `train_days` (without
    them the model's standardisation comes from the checkpoint it is loaded from)."""
    vocab = dataset.vocab
    if train_days is not None:
        vocab = dataclasses.replace(vocab, numeric=numeric_standardisation(dataset.schema,
                                                                           train_days))
    return build_spec(config.model_spec, dataset.schema, vocab, task,
                      config.model_config(device_type))


def numeric_standardisation(schema: Schema, days: list[Day]) -> dict[str, tuple[float, float]]:
    """(shift, scale) of every numeric column of `schema`, from the moments of `days`."""
    out = {}
    for f in schema.numeric:
        moments = Moments()
        for day in days:
            moments = moments.merge(day.stats.numeric.get(f.name, Moments()))
        out[f.name] = standardisation(f.transform, moments)
    return out


def build_run(config: RunConfig, dataset: Dataset | None = None,
              vocab_dir: Path | None = None) -> BuiltRun:
    """Every object of a training run; `dataset` is opened from the config when not given,
    its ids looked up in `vocab_dir`'s vocabs when given (a warm start's).

    The random number generators are seeded just before the model is built, so the same seed
    gives the same initial parameters.
    """
    if config.train.grad_method in AGGREGATORS:
        check_available(config.train.grad_method)
    device_type = resolve_device(config.train.device)
    check_precision(config.train.precision, device_type)
    if device_type == "cuda" and config.sparse_table_gradients(device_type) and \
            launched_world_size() > 1:
        raise ConfigError("train.table_optimizer 'lazy' cannot train on several GPUs: NCCL has "
                          "no all-reduce of sparse gradients; use 'rows' or 'dense'")
    world = init_world(device_type)
    device = device_for(device_type, world)
    dataset = dataset or open_dataset(config.data, world, vocab_dir)
    task = build_task(config)
    task.validate(dataset.schema)
    train_days, eval_days = split_days(dataset, config.data)
    check_days_delay_correction(train_days, task.delay_correction, config.data.as_of_seconds)
    day_rows = [d.rows for d in train_days]
    config = with_batch_size(config, day_rows)
    masks = MaskPolicy(task.mask, dataset.schema, train_days, adm_options(config.task), device,
                       clicks_only=task.click_space_mask(dataset.schema))
    shares = None
    if task.mask not in ("none", "oracle") and world.is_main:
        shares = coverage(masks, train_days, dataset.schema.labels)
    seed_everything(config.seed)
    model = build_model(config, dataset, task, train_days, device.type).to(device)
    if config.train.compile:
        compile_forward(model)
    net: nn.Module = model
    if world.distributed:
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    plan = StepPlan.of(day_rows, config.train.batch_size)
    tables = model.embedding_parameters()
    if not tables and config.train.table_optimizer == "lazy":
        encoder = config.model_config(device.type).encoder.name
        raise ConfigError(f"train.table_optimizer 'lazy' updates embedding tables, and the "
                          f"encoder '{encoder}' has none: use 'rows' or 'dense'")
    # An encoder without embedding tables (a plugin's may have none) has none to make sparse.
    optimisation = Optimisation(model, tables, config.train, plan.steps,
                                sparse_tables=bool(tables) and
                                config.sparse_table_gradients(device.type))
    return BuiltRun(config=config, dataset=dataset, train_days=train_days, eval_days=eval_days,
                    task=task, masks=masks, coverage=shares, model=model, net=net,
                    optimisation=optimisation, plan=plan, world=world, device=device,
                    first_day=training_span([d.name for d in dataset.train], config.data,
                                            dataset.root).start)


def with_batch_size(config: RunConfig, day_rows: list[int]) -> RunConfig:
    """`config` with `batch_size = "auto"` replaced by the batch size it picks for these
    training days (see `malt.training.steps`)."""
    if config.train.batch_size != "auto":
        return config
    train = dataclasses.replace(config.train, batch_size=auto_batch_size(day_rows))
    return dataclasses.replace(config, train=train)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
