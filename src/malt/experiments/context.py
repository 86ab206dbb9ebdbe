"""What every study shares: the data, the output directory, the preset, and the runs.

`Context.run` turns configs into cells and hands them to the scheduler; `Context.tune` is the
paper's protocol for one (model, target): the reference auxiliary set, the lr × λ grid searched on
the validation day, and the selected setting; `Context.test` trains variants of tuned settings
on all training days, once per seed, and returns their test metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from malt.data.task import CAT
from malt.errors import ConfigError
from malt.experiments.cells import Cell, TrainFn
from malt.experiments.presets import Preset
from malt.experiments.scheduler import Outcome, run_cells
from malt.experiments.search import SearchResult, Setting, grid, search
from malt.outputs import OutputDir, atomic_write_text
from malt.train.config import RunConfig
from malt.train.run_dir import RunMetrics

KT_MODELS = ("natal", "moae")
"""Models that fuse auxiliary knowledge into the main tower; the reference trains them with CAT."""
APPENDIX_A_AUX = {"first": ("last",)}
"""Targets whose selected auxiliary set is not "every other label" (MAC paper App. A: with
first-click as target, only the last-click label helps, and no CAT)."""

MODEL_NAMES = {"base": "BASE", "shared_bottom": "Shared-Bottom", "mmoe": "MMoE", "ple": "PLE",
               "home": "HoME", "natal": "NATAL", "moae": "MoAE"}
VIEW_NAMES = {"last": "Last-Click", "first": "First-Click", "mta": "DDA", "linear": "Linear",
              CAT: "CAT"}


def model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def view_name(view: str) -> str:
    return VIEW_NAMES.get(view, view)


def canonical_aux(aux: Sequence[str], labels: Sequence[str]) -> tuple[str, ...]:
    """`aux` in schema label order with CAT last, so that one set is always one run."""
    order = {v: i for i, v in enumerate([*labels, CAT])}
    unknown = [v for v in aux if v not in order]
    if unknown:
        raise ConfigError(f"auxiliary views {unknown} are not labels of the data {list(labels)}")
    return tuple(sorted(dict.fromkeys(aux), key=order.__getitem__))


def reference_aux(model: str, main: str, labels: Sequence[str]) -> tuple[str, ...]:
    """The auxiliary set the MAC paper reports for `model` on target `main` (its reference grid):
    none for BASE; last-click only for a first-click target; otherwise every other label, plus
    CAT for NATAL and MoAE."""
    if model == "base":
        return ()
    if main in APPENDIX_A_AUX and set(APPENDIX_A_AUX[main]) <= set(labels):
        return APPENDIX_A_AUX[main]
    others = tuple(v for v in labels if v != main)
    return canonical_aux((*others, *((CAT,) if model in KT_MODELS else ())), labels)


STUDY_KIND = "study"


def claim_output(out: Path, data: Path) -> OutputDir:
    """Make `out` a study directory tied to the data set `data` (recorded in `out/study.json`).

    `out` must be absent, empty or a malt study: a study resumes in its own directory and never
    writes into another one. Run ids leave the data path out (so that a study can move between
    machines), hence two data sets in one output directory would silently share runs: that is
    refused.
    """
    output = OutputDir(out, STUDY_KIND)
    output.check_writable(keep=True)
    marker = out / "study.json"
    if marker.is_file():
        recorded = json.loads(marker.read_text()).get("data")
        if recorded != str(data):
            raise ConfigError(f"{out} holds runs on the data set {recorded}; pass that --data "
                              "or another --out")
        return output
    output.claim(keep=True)
    atomic_write_text(output.writable(marker), json.dumps({"data": str(data)}, indent=2))
    return output


def main_gauc(metrics: RunMetrics | None, main: str) -> float | None:
    """The main view's GAUC in a run's metrics (None for a failed run)."""
    return None if metrics is None else metrics.views[main].gauc


@dataclass(frozen=True)
class Variant:
    """One test-day configuration: model, target, auxiliary set, setting, gradient method."""

    model: str
    main: str
    aux: tuple[str, ...]
    setting: Setting
    grad_method: str = "none"


@dataclass
class Context:
    """A study's inputs and its runs (see the module docstring)."""

    preset: Preset
    data: Path
    out: Path
    labels: tuple[str, ...]
    seeds: tuple[int, ...]
    schema: str | None = None
    models: tuple[str, ...] | None = None
    """--models (None: each study's default)."""
    targets: tuple[str, ...] | None = None
    lrs: tuple[float, ...] | None = None
    """--lrs: replaces the preset's grids."""
    aux_weights: tuple[float | None, ...] | None = None
    jobs: int | None = None
    device: str = "auto"
    train: TrainFn | None = None
    say: Callable[[str], None] = print
    failures: dict[str, Outcome] = field(default_factory=dict)
    trained: list[Outcome] = field(default_factory=list)
    """Runs trained (not read back) by this context, for the cost summary."""

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    # --- choices ---------------------------------------------------------------------------
    @property
    def display_labels(self) -> tuple[str, ...]:
        """The data's labels in the order of the paper's tables (the preset's targets first)."""
        first = [t for t in self.preset.targets if t in self.labels]
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

    def grid(self, *, search_study: bool = False, uses_aux: bool = True) -> list[Setting]:
        p = self.preset
        lrs = self.lrs or (p.search_lrs if search_study and p.search_lrs else p.lrs)
        weights = self.aux_weights or (p.search_aux_weights if search_study and
                                       p.search_aux_weights else p.aux_weights)
        return grid(lrs, weights, uses_aux=uses_aux)

    def fixed_setting(self) -> Setting:
        """The one setting of fixed-setting runs: the preset's lr and the reference λ, or the
        first of --lrs / --aux-weights."""
        lr = self.lrs[0] if self.lrs else self.preset.lr
        return Setting(lr, self.aux_weights[0] if self.aux_weights else None)

    # --- runs ------------------------------------------------------------------------------
    def config(self, variant: Variant, *, seed: int, split: str = "test") -> RunConfig:
        return self.preset.run_config(
            data=str(self.data), schema=self.schema, model=variant.model, main=variant.main,
            aux=canonical_aux(variant.aux, self.labels), lr=variant.setting.lr,
            aux_weight=variant.setting.aux_weight, seed=seed, split=split,
            grad_method=variant.grad_method, device=self.device)

    def run(self, configs: Sequence[RunConfig]) -> list[RunMetrics | None]:
        """Metrics of every config (None for a failed run), training what is not done yet."""
        cells = [Cell(c) for c in configs]
        distinct = {c.id for c in cells}
        complete = sum(c.run_dir(self.runs).is_complete() for c in {c.id: c for c in cells}
                       .values())
        self.say(f"{len(distinct)} runs, {complete} already complete (under {self.runs})")
        outcomes = run_cells(cells, self.runs, jobs=self.jobs, cpu_jobs=self.preset.cpu_jobs,
                             device=self.device, train=self.train, report=self._report)
        for outcome in outcomes.values():
            if outcome.status == "done":
                self.trained.append(outcome)
            if outcome.status == "failed":
                self.failures[outcome.cell.id] = outcome
            else:
                self.failures.pop(outcome.cell.id, None)
        return [outcomes[c.id].metrics for c in cells]

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
        main = outcome.cell.config.task.main
        line = outcome.progress_line(finished, total, self.runs,
                                     lambda m: f"GAUC {main_gauc(m, main):.4f}")
        if line:
            self.say(line)

    def run_dir(self, variant: Variant, seed: int, split: str = "test") -> Path:
        return Cell(self.config(variant, seed=seed, split=split)).run_dir(self.runs).path

    # --- the paper's protocol --------------------------------------------------------------
    def tune(self, pairs: Sequence[tuple[str, str]], *, search_study: bool = False
             ) -> dict[tuple[str, str], tuple[Variant | None, SearchResult]]:
        """For each (model, target): the reference variant with the setting selected on the
        validation day (None when every validation run failed), and the search result."""
        aux = {(m, t): reference_aux(m, t, self.labels) for m, t in pairs}
        problems = {key: self.grid(search_study=search_study, uses_aux=bool(aux[key]))
                    for key in aux}

        def variant(key: tuple[str, str], setting: Setting) -> Variant:
            return Variant(key[0], key[1], aux[key], setting)

        def evaluate(batch):
            configs = [self.config(variant(key, s), seed=self.seeds[0], split="validation")
                       for key, s in batch]
            return [main_gauc(m, key[1]) for m, (key, _) in zip(self.run(configs), batch)]

        results = search(problems, evaluate)
        return {key: (None if r.setting is None else variant(key, r.setting), r)
                for key, r in results.items()}

    def test(self, variants: Sequence[Variant | None]) -> list[list[RunMetrics | None]]:
        """Per variant, the test metrics of every seed (all Nones for a None variant)."""
        todo = [(i, seed) for i, v in enumerate(variants) if v is not None for seed in self.seeds]
        metrics = self.run([self.config(variants[i], seed=seed) for i, seed in todo])
        out: list[list[RunMetrics | None]] = [[None] * len(self.seeds) for _ in variants]
        for (i, seed), m in zip(todo, metrics):
            out[i][self.seeds.index(seed)] = m
        return out

