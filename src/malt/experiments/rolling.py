"""Rolling evaluation: each day's model judged on the next day, as production judges it.

For every day d of a period, the model trained up to d is scored on training day d+1. Two
chains may run side by side:

    warm     day d's run is warm-started from day d-1's run (`init.from_run`) and trains on
             day d alone; the chain's first run trains from scratch on every day up to it
             (it is the scratch chain's first run too: trained once, shown in both)
    scratch  day d's run trains from scratch on every training day up to d

Each run is an ordinary run directory, under the validation protocol with one held-out day:
its training days are the days above plus day d+1, which it holds out and is scored on, so
its `metrics.json` is the next-day score (and `malt eval --run RUN --data DATA` scores the
same day). Runs are named `<out>/<chain>/<day>/<cell id>` after their config (as a study's cells
are, `malt.experiments.cells`): the same command again reuses the finished runs and
resumes an interrupted one; a run of other settings gets another directory, and a warm run's
digest holds its parent's path, so a changed day retrains the rest of its chain.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from malt.data.as_of import check_days_as_of, parse_as_of
from malt.data.cache import prepare
from malt.data.layout import find_layout
from malt.data.schema import schema_for
from malt.errors import ConfigError, Interrupted
from malt.experiments.cells import Cell, execute
from malt.experiments.plots import daily_lines, save_figure
from malt.experiments.rolling_options import Chain, RollingOptions
from malt.experiments.study import claim_output
from malt.experiments.tables import Column, Table
from malt.outputs import OutputDir, atomic_write_text
from malt.runs.config import InitConfig, RunConfig
from malt.runs.directory import RunDir
from malt.runs.record import RunMetrics
from malt.training.builder import day_index

ROLLING_KIND = "rolling evaluation"
"""The kind of output directory `malt rolling` writes (see `malt.outputs`)."""
TABLE_NAME = "rolling"
"""`<out>/rolling.md`, `rolling.csv` and `rolling.png`."""
SECONDS_PER_DAY = 86_400
PLOTTED = (("auc", "AUC"), ("gauc", "GAUC"), ("logloss", "logloss"), ("pcoc", "PCOC"),
           ("train_rows", "rows trained"), ("train_seconds", "training seconds"))
"""(column of the daily table, title) of each panel of the plot."""


@dataclass(frozen=True)
class DailyRun:
    """One run of a chain: the day its model is trained up to, the day it is scored on, and
    its config (whose digest names its directory)."""

    chain: Chain
    day: str
    scored: str
    config: RunConfig

    @property
    def cell(self) -> Cell:
        return Cell(self.config)

    def directory(self, out: Path) -> Path:
        """`<out>/<chain>/<day>/<cell id>`: the cell's id names the run's settings."""
        return self.cell.run_dir(out / self.chain / self.day).path


def plan(base: RunConfig, days: list[str], options: RollingOptions, out: Path
         ) -> list[list[DailyRun]]:
    """The runs of every day of the period, one list per day (its chains in `options.chains`
    order), for the training days `days` (names in time order) of the data set.

    `base` gives every run's data set, task, model and training settings; a run's days, its
    evaluation protocol and its parent are the chain's. Refused (exit 3) when `base` chooses
    days or a parent itself, or the period has no next day to score its last day on. With
    `options.as_of_origin`, each run trains on the labels known at the end of its last day.
    """
    given = [key for key, value in (("data.train_from", base.data.train_from),
                                    ("data.train_days", base.data.train_days),
                                    ("data.as_of", base.data.as_of),
                                    ("init.from_run", base.init.from_run)) if value is not None]
    if given:
        raise ConfigError(f"malt rolling chooses each run's days, label cut and parent: leave "
                          f"out {', '.join(given)} (the period is --start and --days; the cut "
                          "--as-of-origin)")
    root = Path(base.data.path or ".")
    first = day_index(days, options.start, root, "--start")
    last = first + options.days - 1
    if last + 1 >= len(days):
        raise ConfigError(f"--start {options.start} --days {options.days} ends on day {last}, "
                          f"which is scored on the next training day, and {root} has "
                          f"{len(days)} training days (train/*.parquet): pass at most "
                          f"--days {max(len(days) - 1 - first, 0)}")
    origin = None if options.as_of_origin is None else \
        parse_as_of(options.as_of_origin, "--as-of-origin")
    plans: list[list[DailyRun]] = []
    parent: Path | None = None
    for index in range(first, last + 1):
        today = []
        for chain in options.chains:
            warm = chain == "warm" and parent is not None
            init = InitConfig() if not warm else InitConfig(
                from_run=str(parent), optimiser=options.warm_optimiser,
                numeric=options.warm_numeric, min_count=options.warm_min_count)
            config = _daily_config(base, days, index, init, as_of=_day_end(origin, index))
            run = DailyRun(chain, days[index], days[index + 1], config)
            if chain == "warm":
                parent = run.directory(out).resolve()
            today.append(run)
        plans.append(today)
    return plans


def _day_end(origin: float | None, index: int) -> str | None:
    """The as-of time of a run trained up to training day `index`: the end of that day, on the
    clock whose first day starts at `origin` (None: no cut)."""
    return None if origin is None else f"{origin + (index + 1) * SECONDS_PER_DAY:.17g}"


def _daily_config(base: RunConfig, days: list[str], index: int, init: InitConfig, *,
                  as_of: str | None = None) -> RunConfig:
    """The config of the run trained up to day `index` and scored on the day after: from
    scratch on days 0 ... index, or warm-started as `init` says on day `index` alone, on the
    labels known `as_of` (None: the matured labels)."""
    first = index if init.from_run is not None else 0
    data = dataclasses.replace(base.data, train_from=days[first], train_days=index + 2 - first,
                               eval_split="validation", validation_days=1, as_of=as_of)
    return dataclasses.replace(base, data=data, init=init)


def run_rolling(base: RunConfig, options: RollingOptions,
                say: Callable[[str], None] = print) -> int:
    """Train (or reuse) every run of the period, day by day, and write the daily table and
    plot into `options.out` after each day; 0 when done, 130 when interrupted (the same
    command resumes)."""
    if base.data.path is None:
        raise ConfigError("malt rolling needs --data (or data.path in --config)")
    data = Path(base.data.path).resolve()
    days = [path.stem for path in find_layout(data).train]
    out = Path(options.out)
    plans = plan(dataclasses.replace(base, data=dataclasses.replace(base.data, path=str(data))),
                 days, options, out)
    if options.as_of_origin is not None:  # refused here, not in the first run's directory
        dataset = prepare(data, schema_for(data, base.data.schema), base.data.cache)
        check_days_as_of(dataset.train, parse_as_of(options.as_of_origin, "--as-of-origin"))
    with OutputDir(out, ROLLING_KIND).writing():
        output = claim_output(out, data, kind=ROLLING_KIND,
                              other_data="pass that --data or another --out")
        rows: list[dict] = []
        # The chains' first runs share their config (from scratch up to the first day): one
        # trains, the other reads its record.
        trained: dict[str, tuple[Path, RunMetrics]] = {}
        try:
            for today in plans:
                for run in today:
                    path, metrics = trained.get(run.cell.digest, (run.directory(out), None))
                    finished = metrics is not None or RunDir(path).is_complete()
                    say(f"{run.chain} {run.day} (scored on {run.scored}): {path}"
                        f"{' (finished: reused)' if finished else ''}")
                    if metrics is None:
                        metrics = execute(run.cell, path.parent)
                        trained[run.cell.digest] = path, metrics
                    rows.append(daily_row(run, metrics, path))
                write_daily(output, rows)
        except (Interrupted, KeyboardInterrupt):
            say("interrupted; checkpoints are saved. Run the same command again to resume "
                f"(finished runs under {out} are reused).")
            return 130
    say(daily_table(rows).markdown())
    say(f"wrote {', '.join(str(out / f'{TABLE_NAME}.{ext}') for ext in ('md', 'csv', 'png'))}")
    return 0


def daily_row(run: DailyRun, metrics: RunMetrics, path: Path) -> dict:
    """One line of the daily table: the main view's next-day metrics and the training cost."""
    main = metrics.views[metrics.main]
    return {"day": run.day, "chain": run.chain, "scored_day": ",".join(metrics.eval_days),
            "auc": main.auc, "gauc": main.gauc, "logloss": main.logloss, "pcoc": main.pcoc,
            "ece": main.ece, "train_days": metrics.train.days, "train_rows": metrics.train.rows,
            "train_seconds": metrics.train.seconds, "run": str(path)}


def daily_table(rows: list[dict]) -> Table:
    """The daily table for Markdown: a row per day and chain, in training order."""
    columns = [Column("scored_day", "scored on", "text"), Column("auc", "AUC"),
               Column("gauc", "GAUC"), Column("logloss", "logloss"), Column("pcoc", "PCOC"),
               Column("ece", "ECE"), Column("train_days", "days trained", "count"),
               Column("train_rows", "rows trained", "count"),
               Column("train_seconds", "seconds", "text")]
    columns = [dataclasses.replace(c, rank=False) for c in columns]
    table = Table(title="Next-day evaluation of the main view", row_header="day · chain",
                  rows=[f"{r['day']} · {r['chain']}" for r in rows], columns=columns,
                  notes=["each day's model is scored on the training day after it; "
                         "PCOC = predicted / observed positives"])
    for row, values in zip(table.rows, rows):
        for column in columns:
            value = values[column.key]
            table.add(row, column.key, f"{value:.1f}" if column.key == "train_seconds"
                      else value)
    return table


def write_daily(output: OutputDir, rows: list[dict]) -> None:
    """`rolling.md`, `rolling.csv` (one line per day and chain) and `rolling.png` (each
    plotted metric against the day, a line per chain), each written atomically."""
    frame = pd.DataFrame(rows)
    figure = output.writable(f"{TABLE_NAME}.png")
    chains = list(dict.fromkeys(frame["chain"]))
    days = list(dict.fromkeys(frame["day"]))
    series = {}
    for key, title in PLOTTED:
        for chain in chains:
            mine = frame[frame["chain"] == chain].set_index("day")[key]
            series[(title, chain)] = [float(mine.get(day, math.nan)) for day in days]
    save_figure(daily_lines(days, series, panels=[title for _, title in PLOTTED],
                            title="judged on the next day", xlabel="trained up to day"), figure)
    atomic_write_text(output.writable(f"{TABLE_NAME}.csv"), frame.to_csv(index=False))
    atomic_write_text(output.writable(f"{TABLE_NAME}.md"),
                      f"{daily_table(rows).markdown()}\n\n![{TABLE_NAME}]({figure.name})\n")
