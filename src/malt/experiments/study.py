"""What every study shares: the data, the output directory, the preset, the user's settings and
the runs.

A study asks for *variants* (a model, its views, its lr × λ setting, its gradient method, mask
and model options), which `Study.config` turns into run configs: the preset's settings, then
the variant, then the user's overrides (`--schema`, `--batch-size`, `--model-option`...).
`Study.run` turns configs into cells and hands them to the scheduler; `Study.tune` is the MAC
paper's protocol for one (model, target): the reference auxiliary set, the lr × λ grid searched
on the validation days (`malt.experiments.search`), and the selected setting; `Study.test`
trains variants on all training days, once per seed, and returns their test metrics.

`batch_size = "auto"` is resolved once per study, from the full training days, so that the
validation runs (which train on fewer days) use the batch size of the test runs: an lr
selected at one batch size is tested at that batch size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from malt.config_files import merge_tables, read_key_value_file
from malt.data.cache import Dataset
from malt.data.task import CAT, default_aux_weight
from malt.errors import ConfigError
from malt.eval.report import few_users_warning
from malt.eval.target import ALL
from malt.experiments.cells import Cell, TrainFn
from malt.experiments.options import StudyChoices
from malt.experiments.presets import MacSetup, Setup
from malt.experiments.scheduler import Backend, Outcome, run_cells
from malt.experiments.search import (
    SearchResult,
    Setting,
    ValidationRun,
    constant_logloss,
    grid,
    search,
)
from malt.models import model_spec
from malt.outputs import OutputDir, atomic_write_text
from malt.runs.config import RunConfig
from malt.runs.record import RunMetrics
from malt.training.builder import split_days, training_days, with_batch_size
from malt.typed_fields import Seed, check_ranges

APPENDIX_A_AUX = {"first": ("last",)}
"""Targets whose selected auxiliary set is not "every other label" (MAC paper App. A: with
first-click as target, only the last-click label helps, and no CAT)."""
STUDY_KIND = "study"


def canonical_aux(aux: Sequence[str], labels: Sequence[str]) -> tuple[str, ...]:
    """`aux` in schema label order with CAT last, so that one set is always one run."""
    order = {v: i for i, v in enumerate([*labels, CAT])}
    unknown = [v for v in aux if v not in order]
    if unknown:
        raise ConfigError(f"auxiliary views {unknown} are not labels of the data {list(labels)}")
    return tuple(sorted(dict.fromkeys(aux), key=order.__getitem__))


def reference_aux(model: str, main: str, labels: Sequence[str],
                  chosen: Sequence[str] | None = None) -> tuple[str, ...]:
    """The auxiliary set of `model` on target `main`: none for a model that uses no auxiliary
    view; `chosen` (the user's set) without the target when given; else the MAC paper's
    reference grid: last-click only for a first-click target, otherwise every other label,
    plus CAT for the knowledge-transfer models."""
    traits = model_spec(model).traits
    if not traits.uses_aux:
        return ()
    if chosen is not None:
        return canonical_aux([v for v in chosen if v != main], labels)
    if main in APPENDIX_A_AUX and set(APPENDIX_A_AUX[main]) <= set(labels):
        return APPENDIX_A_AUX[main]
    with_cat = traits.family == "knowledge-transfer" and traits.takes_cat
    others = tuple(v for v in labels if v != main)
    return canonical_aux((*others, *((CAT,) if with_cat else ())), labels)


def claim_output(out: Path, data: Path, *, kind: str = STUDY_KIND, overwrite: bool = False,
                 other_data: str = "pass that --data or another --out") -> OutputDir:
    """Make `out` a study directory (an output of `kind`) tied to the data set `data`
    (recorded in `out/study.json`).

    `out` must be absent, empty or a malt study: a study resumes in its own directory and never
    writes into another one. Run ids leave the data path out (so that a study can move between
    machines), hence two data sets in one output directory would silently share runs: a
    directory tied to other data (or whose record is damaged) is refused, `other_data` saying
    what to do, unless `overwrite`, which empties it of malt's files first.
    """
    output = OutputDir(out, kind)
    output.check_writable(keep=True)
    marker = out / "study.json"
    if marker.is_file():
        try:
            recorded = read_key_value_file(marker, "study record").get("data")
        except ConfigError as exc:
            if not overwrite or isinstance(exc.__cause__, OSError):
                raise
            recorded = None
        if recorded == str(data):
            return output
        if not overwrite:
            raise ConfigError(f"{out} holds runs on the data set {recorded}; {other_data}")
        output.claim(overwrite=True)
    else:
        output.claim(keep=True)
    atomic_write_text(output.writable(marker),
                      json.dumps({"data": str(data)}, indent=2, allow_nan=False))
    return output


def main_gauc(metrics: RunMetrics | None, main: str) -> float | None:
    """The main view's GAUC in a run's metrics (None for a failed run)."""
    return None if metrics is None else metrics.views[main].gauc


def validation_run(metrics: RunMetrics | None, main: str,
                   base_rate: float = math.nan) -> ValidationRun | None:
    """The main view's validation metrics of a run (None for a failed run); `base_rate`: the
    share of positive rows of the main label on the validation days."""
    if metrics is None:
        return None
    view = metrics.views[main]
    return ValidationRun(view.auc, view.gauc, view.logloss, constant_logloss(base_rate))


@dataclass(frozen=True)
class Variant:
    """One configuration a study trains: model, target, auxiliary set, setting, gradient
    method (and its options), training mask and model options."""

    model: str
    main: str
    aux: tuple[str, ...]
    setting: Setting
    grad_method: str = "none"
    mask: str = "none"
    options: tuple[tuple[str, Any], ...] = ()
    """Options of the model's config, as (key, value) pairs."""
    train: tuple[tuple[str, Any], ...] = ()
    """Options of the gradient method (`[train]` keys), as (key, value) pairs."""


@dataclass(frozen=True)
class Study(StudyChoices):
    """A study's inputs and its runs (see the module docstring): the user's choices (as
    `malt study` read them) and what they resolved to."""

    preset: str
    setup: Setup
    data: Path
    output: OutputDir
    labels: tuple[str, ...]
    seeds: tuple[Seed, ...]
    dataset: Dataset | None = None
    """The prepared data set (the studies that read the data itself use it)."""
    data_note: str = ""
    """How the notes name the data (default: its path)."""
    backend: Backend | None = None
    """Where the runs train (None: this machine's processes, `LocalBackend`)."""
    train: TrainFn | None = None
    say: Callable[[str], None] = print
    failures: dict[str, Outcome] = field(default_factory=dict)
    trained: list[Outcome] = field(default_factory=list)
    """Runs trained (not read back) by this study, for the cost summary."""
    warned: set[str] = field(default_factory=set)
    """Warnings said already (every run of a split scores the same users: said once)."""
    searches: dict[tuple[str, str], SearchResult] = field(default_factory=dict)
    """The validation search of every (model, target) tuned so far, for the tables."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, "study")

    @property
    def runs(self) -> Path:
        return self.output.path / "runs"

    @property
    def mac(self) -> MacSetup:
        """The MAC studies' setup (grids, targets, greedy problems)."""
        if not isinstance(self.setup, MacSetup):
            raise ConfigError("this study needs the MAC studies' preset")
        return self.setup

    def prepared(self) -> Dataset:
        if self.dataset is None:
            raise ConfigError("this study reads the data set, which was not prepared")
        return self.dataset

    # --- choices ---------------------------------------------------------------------------
    @property
    def display_labels(self) -> tuple[str, ...]:
        """The data's labels in the order of the paper's tables (the preset's targets first)."""
        first = [t for t in getattr(self.setup, "targets", ()) if t in self.labels]
        return (*first, *(v for v in self.labels if v not in first))

    def pick_models(self, default: Sequence[str]) -> tuple[str, ...]:
        return tuple(self.models) if self.models else tuple(default)

    def pick_targets(self, default: Sequence[str]) -> tuple[str, ...]:
        """--targets, else the defaults that are labels of the data (else every label)."""
        if self.targets:
            missing = [t for t in self.targets if t not in self.labels]
            if missing:
                raise ConfigError(f"targets {missing} are not labels of the data "
                                  f"{list(self.labels)}")
            return tuple(self.targets)
        return tuple(t for t in default if t in self.labels) or self.labels

    def reference_aux(self, model: str, main: str) -> tuple[str, ...]:
        """The auxiliary set of the tuned runs (see `reference_aux`; --aux when given)."""
        return reference_aux(model, main, self.labels, self.aux)

    def grid(self, *, search_study: bool = False, uses_aux: bool = True) -> list[Setting]:
        p = self.mac
        lrs = self.lrs or (p.search_lrs if search_study and p.search_lrs else p.lrs)
        weights = self.aux_weights or (p.search_aux_weights if search_study and
                                       p.search_aux_weights else p.aux_weights)
        return grid(lrs, weights, uses_aux=uses_aux, label_modes=self.label_modes or (None,))

    def fixed_setting(self, aux_weight: float | None = None) -> Setting:
        """The one setting of fixed-setting runs: the preset's lr (or the first of --lrs) and
        `aux_weight` (or the first of --aux-weights; None: the model's default λ)."""
        lr = self.lrs[0] if self.lrs else self.setup.lr
        return Setting(lr, self.aux_weights[0] if self.aux_weights else aux_weight)

    # --- runs ------------------------------------------------------------------------------
    def config(self, variant: Variant, *, seed: int, split: str = "test") -> RunConfig:
        """The run config of `variant`: the preset, the variant, then the user's overrides."""
        s = self.setup
        tree = {
            "seed": seed,
            "data": {"path": str(self.data), "eval_split": split},
            "task": {**s.task, "main": variant.main,
                     "aux": list(canonical_aux(variant.aux, self.labels)),
                     "aux_weight": variant.setting.aux_weight, "mask": variant.mask},
            "train": {**s.train, **dict(variant.train), "lr": variant.setting.lr,
                      "grad_method": variant.grad_method,
                      "device": self.device},
            "model": {**merge_tables(s.model_options(variant.model), dict(variant.options)),
                      "name": variant.model},
        }
        if variant.setting.label_mode is not None:
            tree["task"]["label_mode"] = variant.setting.label_mode
        config = RunConfig.from_dict(merge_tables(tree, self.overrides),
                                     source=f"preset '{self.preset}'")
        if config.train.batch_size == "auto":
            config = replace(config, train=replace(config.train,
                                                   batch_size=self.auto_batch_size))
        return config

    @cached_property
    def auto_batch_size(self) -> int:
        """What `batch_size = "auto"` picks for the full training days (every run's, the
        validation runs' included)."""
        data = RunConfig.from_dict(merge_tables({"data": {"path": str(self.data)}},
                                                {"data": self.overrides.get("data", {})})).data
        days = training_days(self.prepared(), data)
        return with_batch_size(RunConfig(), [d.rows for d in days]).train.batch_size

    @property
    def batch_note(self) -> str:
        """The batch size of the study's runs, as the tables' notes say it."""
        size = merge_tables({"train": self.setup.train}, self.overrides)["train"].get(
            "batch_size", RunConfig().train.batch_size)
        if size == "auto":
            return (f"batch {self.auto_batch_size} (`auto`, resolved once from the full "
                    "training days, for validation and test runs alike)")
        return f"batch {size}"

    def run(self, configs: Sequence[RunConfig]) -> list[RunMetrics | None]:
        """Metrics of every config (None for a failed run), training what is not done yet."""
        cells = [Cell(c) for c in configs]
        unique = list({c.id: c for c in cells}.values())
        complete = sum(c.run_dir(self.runs).is_complete() for c in unique)
        self.say(f"{len(unique)} runs, {complete} already complete (under {self.runs})")
        outcomes = run_cells(cells, self.runs, jobs=self.jobs, cpu_jobs=self.setup.cpu_jobs,
                             device=self.device, train=self.train, report=self._report,
                             backend=self.backend)
        for outcome in outcomes.values():
            if outcome.status == "done":
                self.trained.append(outcome)
            if outcome.status == "failed":
                self.failures[outcome.cell.id] = outcome
            else:
                self.failures.pop(outcome.cell.id, None)
        metrics = [outcomes[c.id].metrics for c in cells]
        for config, m in zip(configs, metrics):
            warning = None if m is None or m.main not in m.views else few_users_warning(
                m.views, m.per_day, m.main, split=config.data.eval_split)
            if warning is not None and warning not in self.warned:
                self.warned.add(warning)
                self.say(f"warning: {warning}")
        return metrics

    def test(self, variants: Sequence[Variant | None]) -> list[list[RunMetrics | None]]:
        """Per variant, the test metrics of every seed (all Nones for a None variant)."""
        todo = [(i, seed) for i, v in enumerate(variants) if v is not None for seed in self.seeds]
        metrics = self.run([self.config(variants[i], seed=seed) for i, seed in todo])
        out: list[list[RunMetrics | None]] = [[None] * len(self.seeds) for _ in variants]
        for (i, seed), m in zip(todo, metrics):
            out[i][self.seeds.index(seed)] = m
        return out

    def run_dir(self, variant: Variant, seed: int, split: str = "test") -> Path:
        return Cell(self.config(variant, seed=seed, split=split)).run_dir(self.runs).path

    def cost_summary(self, since: int = 0) -> str:
        """Training rows and seconds of the runs trained since `trained[since]`."""
        done = self.trained[since:]
        if not done:
            return "no run trained (all read back)"
        rows = sum(o.metrics.train.rows for o in done)
        seconds = sum(o.metrics.train.seconds for o in done)
        rate = f" ({rows / seconds:,.0f} rows/s per run)" if seconds > 0 else ""
        return (f"{len(done)} run(s) trained: {rows:,} training rows in {seconds:,.0f} s of "
                f"training{rate}")

    def _report(self, outcome: Outcome, finished: int, total: int) -> None:
        line = outcome.progress_line(finished, total, self.runs, _score)
        if line:
            self.say(line)

    def notes(self, *extra: str, ranked: bool = True) -> list[str]:
        """The first lines under every table: preset, data, seeds (and the marks)."""
        seeds = len(self.seeds)
        spread = (f"mean ± std over {seeds} seeds ({', '.join(map(str, self.seeds))})"
                  if seeds > 1 else f"one seed ({self.seeds[0]})")
        data = self.data_note or f"`{self.data}`"
        lines = [f"Preset `{self.preset}`, data: {data}; {spread}; {self.batch_note}."]
        if ranked:
            lines.append("Best in **bold**, second best <u>underlined</u>.")
        return [*lines, *extra]

    # --- the MAC paper's protocol ----------------------------------------------------------
    def tune(self, pairs: Sequence[tuple[str, str]], *, search_study: bool = False
             ) -> dict[tuple[str, str], tuple[Variant | None, SearchResult]]:
        """For each (model, target): the reference variant with the setting selected on the
        validation days (None when no validation run could be selected), and the search
        result (see `malt.experiments.search`)."""
        aux = {(m, t): self.reference_aux(m, t) for m, t in pairs}
        problems = {key: self.grid(search_study=search_study, uses_aux=bool(aux[key]))
                    for key in aux}
        seeds = self.validation_seed_list

        def variant(key: tuple[str, str], setting: Setting) -> Variant:
            return Variant(key[0], key[1], aux[key], setting)

        def evaluate(batch):
            configs = [self.config(variant(key, s), seed=seeds[i], split="validation")
                       for key, s, i in batch]
            return [validation_run(m, c.task.main, self.validation_base_rate(c))
                    for m, c in zip(self.run(configs), configs)]

        results = search(problems, evaluate, seeds=len(seeds), metric=self.select_metric,
                         reference_weights={key: self.reference_weight(*key) for key in aux})
        self.searches.update(results)
        return {key: (None if r.setting is None else variant(key, r.setting), r)
                for key, r in results.items()}

    @property
    def validation_seed_list(self) -> tuple[int, ...]:
        """The validation seeds of the search: the first study seed and the ones after it."""
        count = self.validation_seeds or len(self.seeds)
        return tuple(range(self.seeds[0], self.seeds[0] + count))

    def reference_weight(self, model: str, main: str) -> float:
        """The λ a setting's `ref` stands for."""
        own = model_spec(model).traits.aux_weight
        return default_aux_weight(main) if own is None else own

    def validation_base_rate(self, config: RunConfig) -> float:
        """The share of positive rows of `config`'s main label on its validation days (NaN when
        the study did not read the data set)."""
        if self.dataset is None:
            return math.nan
        days = split_days(self.dataset, config.data)[1]
        rows = sum(d.rows for d in days)
        positives = sum(d.stats.positives.get(config.task.main, 0) for d in days)
        return positives / rows if rows else math.nan


def _score(metrics: RunMetrics) -> str:
    """What a progress line shows of a finished run."""
    if metrics.target is not None:
        return f"AUC(all) {metrics.target[ALL].auc:.4f}"
    return f"GAUC {metrics.main_metrics.gauc:.4f}"
