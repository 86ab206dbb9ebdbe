"""The KAML paper's studies on incomplete, skewed multi-label data (`malt study kaml`).

One command writes four tables into `<out>/kaml.md` (and one CSV each):
* Table 1 (`kaml-coverage.csv`): share of training rows each mask trains per action — base,
  ADM and, when the data says which actions campaigns report, the reported set;
* Table 2 (`kaml.csv`): every model per action, each test row scored once on its target
  action (AUC and LogLoss per action and pooled "All"), and RelaImpr of KAML against the best
  baseline of a configurable set per column (default: the multi-task baselines, which is how
  the paper's figures come out);
* Table 3 (`kaml-oracle.csv`): Vanilla (MMoE, base mask) / KAML / Oracle (MMoE on the true
  labels), plus the paper's simulated KAML setting (reported mask + RLU, no HKE) when the data
  has reported flags;
* Table 4 (`kaml-ablation.csv`): MMoE, +ADM, +ADM+HKE, +RLU, KAML.

Every run is a cell (`malt.experiments.cells`) under `<out>/runs`, trained once however many
tables use it, resumable, one per seed; tables show mean ± std over seeds. Baselines train under
the base mask, as in the paper (§4.1.3); KAML under ADM. With no `--data` the app-promotion
simulator writes the preset's size into `<out>/data`.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from malt.errors import ConfigError
from malt.experiments.cells import Cell
from malt.experiments.scheduler import Outcome, run_cells
from malt.experiments.tables import Column, Table, write_tables
from malt.train.config import RunConfig
from malt.train.run_dir import RunMetrics

NAME = "kaml"
ALL = "all"
MULTI_TASK = ("shared_bottom", "star", "mmoe", "ple", "taml")
"""Table 2's multi-task baselines: the default RelaImpr baseline set."""
TABLE2_MODELS = ("single_task", *MULTI_TASK, "kaml")
MODEL_NAMES = {"single_task": "SingleTask", "shared_bottom": "SharedBottom", "star": "STAR",
               "mmoe": "MMoE", "ple": "PLE", "taml": "TAML", "kaml": "KAML"}
SHARED_MODEL = {"encoder": {"embed_dim": 16}, "expert": {"dim": 128}, "tower": {"dims": [64, 32]}}
FOUR_EXPERTS = {"mmoe": {"experts": 4}, "kaml": {"experts": 4}}


@dataclass(frozen=True)
class KamlPreset:
    """Size of the simulated data, seeds, and the `[train]` / `[model]` / ADM keys of every run."""

    name: str
    sim_size: str
    seeds: int
    train: dict[str, Any]
    model: dict[str, Any]
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options of single models, on top of `model`."""
    adm: dict[str, Any] = field(default_factory=dict)
    """`[task]` ADM keys (`adm_window`, `adm_window_days`, `adm_alpha`, ...)."""
    cpu_jobs: int | None = None
    """Parallel runs on CPU when --jobs is not given (None: one per core, one thread each;
    the models are small, so several single-threaded runs beat one multi-threaded run)."""


PRESETS: dict[str, KamlPreset] = {
    "smoke": KamlPreset(
        "smoke", "tiny", seeds=2, train={"batch_size": 256, "lr": 3e-3, "log_every": 1000},
        model={"encoder": {"embed_dim": 8}, "expert": {"dim": 32}, "tower": {"dims": [16, 8]}},
        per_model={"taml": {"learners": 2}}),
    "small": KamlPreset("small", "small", seeds=3,
                        train={"batch_size": 512, "lr": 3e-3, "log_every": 1000},
                        model=SHARED_MODEL, per_model=FOUR_EXPERTS),
    "paper": KamlPreset("paper", "medium", seeds=5,
                        train={"batch_size": 5000, "lr": 1e-3, "embedding_lr_scale": 1.0,
                               "log_every": 1000},
                        model=SHARED_MODEL, per_model=FOUR_EXPERTS, cpu_jobs=1),
}
"""smoke: the tiny simulation, minutes on a CPU; small: the committed study (one pass over ten
days of ~50k clicks at batch 512); paper: the paper's protocol (Adam, lr 1e-3, batch 5000, five
seeds) on four simulated weeks."""


@dataclass(frozen=True)
class Variant:
    """One row of a table: a model, the mask it trains under, its model options."""

    label: str
    model: str
    mask: str
    options: tuple[tuple[str, Any], ...] = ()


def model_variant(model: str) -> Variant:
    """A Table-2 row: KAML under ADM, every baseline under the base mask."""
    return Variant(MODEL_NAMES.get(model, model), model, "adm" if model == "kaml" else "base")


KAML = model_variant("kaml")
MMOE = model_variant("mmoe")
ORACLE_ROWS = (Variant("Vanilla", "mmoe", "base"), Variant("KAML", "kaml", "adm"),
               Variant("KAML (reported + RLU)", "kaml", "reported", (("hke", False),)),
               Variant("Oracle", "mmoe", "oracle"))
ABLATION_ROWS = (Variant("MMoE", "mmoe", "base"), Variant("MMoE+ADM", "mmoe", "adm"),
                 Variant("MMoE+ADM+HKE", "kaml", "adm", (("rlu", False),)),
                 Variant("MMoE+RLU", "kaml", "base", (("hke", False),)),
                 Variant("KAML", "kaml", "adm"))


@dataclass
class KamlStudy:
    """Inputs of one `malt study kaml` and the runs it trains."""

    preset: KamlPreset
    data: Path
    schema: Path
    out: Path
    labels: tuple[str, ...]
    seeds: tuple[int, ...]
    models: tuple[str, ...] = TABLE2_MODELS
    baselines: tuple[str, ...] | None = None
    """RelaImpr baseline set (model names); None = the multi-task baselines among `models`."""
    has_reported: bool = False
    data_note: str = ""
    """How the notes name the data (default: its path)."""
    lr: float | None = None
    jobs: int | None = None
    device: str = "auto"
    train: Callable[..., Any] | None = None
    say: Callable[[str], None] = print
    failures: dict[str, Outcome] = field(default_factory=dict)
    results: dict[Variant, list[RunMetrics | None]] = field(default_factory=dict)

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    def config(self, variant: Variant, seed: int) -> RunConfig:
        p = self.preset
        train = {**p.train, "device": self.device}
        if self.lr is not None:
            train["lr"] = self.lr
        return RunConfig.from_dict({
            "seed": seed,
            "data": {"path": str(self.data), "schema": str(self.schema)},
            "task": {"main": self.labels[0], "aux": list(self.labels[1:]), "aux_weight": 1.0,
                     "mask": variant.mask, **p.adm},
            "train": train,
            "model": {"name": variant.model, **p.model, **p.per_model.get(variant.model, {}),
                      **dict(variant.options)},
        }, source=f"kaml preset '{p.name}'")

    def run(self, variants: Sequence[Variant]) -> dict[Variant, list[RunMetrics | None]]:
        """Per variant, the metrics of every seed (None for a failed run); variants already
        run by this study are not asked for again."""
        todo = [v for v in dict.fromkeys(variants) if v not in self.results]
        if todo:
            cells = {(v, s): Cell(self.config(v, s)) for v in todo for s in self.seeds}
            self.say(f"{len({c.id for c in cells.values()})} distinct runs under {self.runs}")
            outcomes = run_cells(list(cells.values()), self.runs, jobs=self.jobs,
                                 cpu_jobs=self.preset.cpu_jobs, device=self.device,
                                 train=self.train, report=self._report)
            for outcome in outcomes.values():
                if outcome.status == "failed":
                    self.failures[outcome.cell.id] = outcome
            for v in todo:
                self.results[v] = [outcomes[cells[(v, s)].id].metrics for s in self.seeds]
        return {v: self.results[v] for v in variants}

    def _report(self, outcome: Outcome, finished: int, total: int) -> None:
        line = outcome.progress_line(finished, total, self.runs,
                                     lambda m: f"AUC(all) {m.target[ALL].auc:.4f}")
        if line:
            self.say(line)

    # --- tables --------------------------------------------------------------------------
    def notes(self, *extra: str) -> list[str]:
        seeds = (f"mean ± std over {len(self.seeds)} seeds ({', '.join(map(str, self.seeds))})"
                 if len(self.seeds) > 1 else f"one seed ({self.seeds[0]})")
        return [f"Preset `{self.preset.name}`, data: {self.data_label}; {seeds}.", *extra]

    @property
    def data_label(self) -> str:
        return self.data_note or f"`{self.data}`"

    def metric_columns(self) -> list[Column]:
        columns = []
        for action in (*self.labels, ALL):
            title = "All" if action == ALL else action
            columns += [Column(f"{action}_auc", f"{title} AUC"),
                        Column(f"{action}_logloss", f"{title} LogLoss", rank=False)]
        return columns

    def metric_table(self, title: str, rows: dict[str, list[RunMetrics | None]],
                     *extra: str) -> Table:
        table = Table(title, "Model", list(rows), self.metric_columns())
        for row, runs in rows.items():
            for metrics in runs:
                if metrics is None:
                    continue
                for action in (*self.labels, ALL):
                    m = metrics.target.get(action)
                    if m is None:
                        continue
                    for key in ("auc", "logloss"):
                        if math.isfinite(getattr(m, key)):
                            table.add(row, f"{action}_{key}", getattr(m, key))
        table.notes = self.notes(
            "Each test row is scored once, on its campaign's target action (KAML protocol). "
            "Best AUC per column in **bold**, second <u>underlined</u>; LogLoss (lower is "
            "better) is not marked.", *extra)
        return table


def coverage_table(study: KamlStudy, dataset) -> Table:
    """Table 1 from the training days (no training needed)."""
    from malt.data.masks import OTHER, MaskPolicy, coverage
    from malt.train.builder import adm_options

    options = adm_options(study.config(KAML, study.seeds[0]).task)
    masks = ["adm", *(["reported"] if dataset.schema.reported_labels else [])]
    report: dict[str, dict[str, float]] = {}
    for mask in masks:
        report |= coverage(MaskPolicy(mask, dataset.schema, dataset.train, options),
                           dataset.train, dataset.schema.labels)
    names = {"base": "Base", "adm": "With ADM", "reported": "Reported set"}
    columns = [Column(a, a, kind="percent", rank=False) for a in (*study.labels, OTHER)]
    table = Table("Table 1: share of training rows used for each action", "Mask strategy",
                  [names[k] for k in report], columns)
    for key, shares in report.items():
        for action, share in shares.items():
            table.add(names[key], action, share)
    window = (f"the {options.window_days} training days before each day" if
              options.window == "trailing" else "every training day")
    table.notes = [f"Data: {study.data_label}, {sum(d.rows for d in dataset.train):,} training "
                   f"rows. ADM: a campaign's reported conversions of an action over {window}, "
                   f"threshold α = {options.alpha:g}; rows whose target is another action "
                   "(\"other\") train nothing under the base mask."]
    return table


def models_table(study: KamlStudy) -> Table:
    """Table 2: every model per action, and RelaImpr of KAML."""
    variants = [model_variant(m) for m in study.models]
    results = study.run(variants)
    rows = {v.label: results[v] for v in variants}
    baselines = study.baselines if study.baselines is not None else \
        tuple(m for m in study.models if m in MULTI_TASK)
    extra = ["Baselines train under the base mask, KAML under ADM. SingleTask's \"All\" pools "
             "its per-action networks (the paper leaves it out)."]
    table = study.metric_table("Table 2: every model per action", rows, *extra)
    table.rank_groups = [[v.label for v in variants if v.model != "single_task"]]
    if "kaml" in study.models and baselines:
        line = _add_rela_impr(table, study, [MODEL_NAMES.get(m, m) for m in baselines])
        table.notes.append(line)
    return table


def _add_rela_impr(table: Table, study: KamlStudy, baselines: list[str]) -> str:
    """Add the RelaImpr row (mean AUCs) and return the note naming each column's baseline."""
    from malt.eval.target import rela_impr_columns

    keys = [f"{a}_auc" for a in (*study.labels, ALL)]
    mean = {row: {k: table.stats(row, k)[0] for k in keys} for row in table.rows}
    values = rela_impr_columns(mean[MODEL_NAMES["kaml"]],
                               {b: mean[b] for b in baselines if b in mean})
    row = "RelaImpr"
    table.rows.append(row)
    table.row_kinds[row] = "percent"
    used = []
    for key, (value, baseline) in values.items():
        if math.isfinite(value):
            table.add(row, key, value)
            used.append(f"{key.removesuffix('_auc').replace(ALL, 'All')}: {baseline}")
    return (f"RelaImpr = (AUC_KAML − 0.5) / (AUC_best − 0.5) − 1 on mean AUCs, best among "
            f"{', '.join(baselines)}; baseline used per column — {'; '.join(used)}.")


def oracle_table(study: KamlStudy) -> Table:
    """Table 3: Vanilla / KAML / Oracle."""
    variants = [v for v in ORACLE_ROWS if v.mask != "reported" or study.has_reported]
    results = study.run(variants)
    return study.metric_table(
        "Table 3: Vanilla (target labels only) / KAML / Oracle (every true label)",
        {v.label: results[v] for v in variants},
        "Vanilla and Oracle are MMoE under the base mask and on the true labels; KAML "
        "(reported + RLU) is the paper's simulated-data setting: every reported action, "
        "ranking loss, no HKE.")


def ablation_table(study: KamlStudy) -> Table:
    """Table 4: MMoE, +ADM, +ADM+HKE, +RLU, KAML."""
    results = study.run(list(ABLATION_ROWS))
    return study.metric_table("Table 4: ablations on the MMoE base",
                              {v.label: results[v] for v in ABLATION_ROWS},
                              "+RLU trains under the base mask (HKE needs ADM's extended rows).")


def table_variants(study: KamlStudy) -> list[Variant]:
    """Every row of Tables 2-4."""
    return [*(model_variant(m) for m in study.models),
            *(v for v in ORACLE_ROWS if v.mask != "reported" or study.has_reported),
            *ABLATION_ROWS]


def run_study(study: KamlStudy, dataset) -> list[tuple[str, Table]]:
    """Every table of the study, as (CSV suffix, table); all runs are scheduled at once."""
    study.run(table_variants(study))
    return [("coverage", coverage_table(study, dataset)), ("", models_table(study)),
            ("oracle", oracle_table(study)), ("ablation", ablation_table(study))]


def run_command(args: argparse.Namespace) -> int:
    """`malt study kaml` (flags of `malt.commands.study`)."""
    from malt.data import prepare, schema_for
    from malt.data.layout import find_layout
    from malt.experiments.context import claim_output
    from malt.models.registry import model_spec

    if args.preset not in PRESETS:
        raise ConfigError(f"the kaml study has presets {list(PRESETS)}, not '{args.preset}'")
    for unused in ("targets", "aux_weights"):
        if getattr(args, unused, None):
            raise ConfigError(f"--{unused.replace('_', '-')} is not used by the kaml study "
                              "(every action is a task, λ = 1)")
    preset = PRESETS[args.preset]
    out = Path(args.out or f"studies/kaml-{preset.name}")
    models = tuple(args.models) if args.models else TABLE2_MODELS
    baselines = tuple(args.baselines) if getattr(args, "baselines", None) else None
    for model in (*models, *(baselines or ())):
        model_spec(model)
    data = Path(args.data) if args.data else out / "data"
    note = f"`{args.data}`" if args.data else \
        f"the simulated app-promotion `{preset.sim_size}` set (seed {args.seed})"
    if args.data:
        find_layout(data)
        schema = Path(args.schema) if args.schema else data / "schema.toml"
        if not schema.is_file():
            raise ConfigError(f"no schema at {schema}: pass --schema (the data needs "
                              "campaign, target-action and true-label columns)")
    output = claim_output(out, data.resolve())
    if not args.data and not data.exists():
        from malt.data.simulate.app_promotion import simulate_app_promotion, size_config

        print(f"simulating the '{preset.sim_size}' app-promotion data set into {data} ...",
              flush=True)
        simulate_app_promotion(size_config(preset.sim_size, seed=args.seed), data)
    data = data.resolve()
    schema = Path(args.schema) if args.schema else data / "schema.toml"
    dataset = prepare(data, schema_for(data, schema))
    s = dataset.schema
    if not (s.campaign_column and s.target_action_column and s.true_labels):
        raise ConfigError(f"schema '{s.name}' lacks campaign, target-action or true-label "
                          "columns; the kaml study needs all three")
    seeds = args.seeds if args.seeds is not None else preset.seeds
    if seeds < 1:
        raise ConfigError(f"--seeds must be positive, got {seeds}")
    study = KamlStudy(preset=preset, data=data, schema=schema.resolve(), out=out,
                      labels=s.labels, seeds=tuple(range(args.seed, args.seed + seeds)),
                      models=models, baselines=baselines,
                      has_reported=bool(s.reported_labels), data_note=note,
                      lr=args.lrs[0] if args.lrs else None, jobs=args.jobs, device=args.device,
                      say=lambda line: print(line, flush=True))
    from malt.errors import Interrupted

    started = time.perf_counter()
    print(f"\n== study kaml (KAML paper Tables 1-4, preset {preset.name}) ==", flush=True)
    try:
        tables = run_study(study, dataset)
    except (Interrupted, KeyboardInterrupt):
        print(f"\ninterrupted; checkpoints are saved. Run the same command again to resume "
              f"(completed runs under {study.runs} are kept).")
        return 130
    for _, table in tables:
        print(f"\n{table.markdown()}")
    paths = write_tables(output, NAME, tables)
    print(f"\nwrote {', '.join(str(p) for p in paths)} ({time.perf_counter() - started:.0f} s)")
    if study.failures:
        print(f"\n{len(study.failures)} run(s) failed (their cells show –):")
        for outcome in study.failures.values():
            print(f"  {outcome.cell.run_dir(study.runs).path}: {outcome.error}")
        return 1
    return 0
