"""`malt demo`: the main job — simulate, train BASE and MoAE on last-click, compare them.

The demo is a two-run study: its directory is claimed as a study's is (tied to one data set),
and the study engine trains its runs, reads back the complete ones and resumes an interrupted
one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from malt.commands._options import add_options, read_options
from malt.runs.config import DEFAULT_SEED, Device
from malt.sources.simulate.options import SizeName
from malt.typed_fields import Seed, validate

if TYPE_CHECKING:
    from malt.runs.config import RunConfig
    from malt.runs.directory import RunDir
    from malt.runs.record import RunMetrics

HELP = "simulate a small data set, train BASE and MoAE (last-click target) and compare them"

DEMO_KIND = "demo"
DEMO_MODELS = {
    "base": [],
    "moae": ["first", "linear", "mta", "cat"],
}
"""The demo's runs: model -> auxiliary views (last-click is the target of both)."""


@dataclass(frozen=True)
class DemoOptions:
    """Where `malt demo` writes and what it trains on."""

    out: str = "runs/demo"
    """Directory for data and runs."""
    data: str | None = None
    """Use this data set (MAC layout) instead of simulating."""
    size: SizeName = "small"
    """Simulated size when --data is not given."""
    seed: Seed = DEFAULT_SEED
    """Random seed of the simulation and the runs."""
    device: Device = "auto"
    """Where to train: `auto` takes CUDA when it is available."""
    overwrite: bool = False
    """Replace an earlier demo in --out that was run on other data (another --data, --size or
    --seed)."""

    def __post_init__(self) -> None:
        validate(self, "")


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, DemoOptions)


def run(args: argparse.Namespace) -> int:
    from malt.data.layout import find_layout
    from malt.errors import Interrupted
    from malt.outputs import OutputDir
    from malt.training.distributed import resolve_device

    options = read_options(args, DemoOptions)
    out = Path(options.out)
    data = Path(options.data) if options.data else \
        simulated_data(out, options.size, options.seed)
    if options.data:
        find_layout(data)
    resolve_device(options.device)
    try:
        with OutputDir(out, DEMO_KIND).writing():
            return _run_demo(options, out, data)
    except (Interrupted, KeyboardInterrupt) as stop:
        # The engine raises a run's interruption as a KeyboardInterrupt saying where it stopped.
        stopped = f" ({stop})" if str(stop) else ""
        print(f"\ninterrupted{stopped}. Run the same command again to continue: what is "
              "finished (the data, trained runs) is kept and an interrupted run resumes from "
              "its checkpoint")
        return 130


def simulated_data(out: Path, size: str, seed: int) -> Path:
    """Where the demo simulates `size` with `seed`: named by both, so that a demo directory,
    tied to one data set, holds the runs of one simulation."""
    return out / f"data-{size}-seed{seed}"


def demo_configs(data: Path, seed: int, device: str) -> dict[str, RunConfig]:
    """The run config of each of the demo's models."""
    from malt.runs.config import RunConfig

    return {model: RunConfig.from_dict({
        "seed": seed, "data": {"path": str(data)},
        "task": {"main": "last", "aux": aux},
        # Shuffled within days: the simulator's days are in time order with a daily swing
        # of the conversion rate, which a file-order pass chases (docs/studies.md).
        "train": {"device": device, "shuffle": True},
        "model": {"name": model}}) for model, aux in DEMO_MODELS.items()}


def train_with_progress(config: RunConfig, out: str | Path, **kwargs) -> RunMetrics | None:
    """`malt.jobs.train.train_run` as `malt train` runs it: the step plan, progress lines and the
    day-end release of freed memory."""
    from malt.allocator import release_freed_memory
    from malt.commands._progress import console_progress
    from malt.jobs.train import train_run

    print(f"\ntraining {config.model['name']} (main: {config.task.main}, aux: "
          f"{', '.join(config.task.aux) or 'none'}) ...", flush=True)
    return train_run(config, out, progress=console_progress(), announce=print,
                     day_end=release_freed_memory, **kwargs)


def _run_demo(options: DemoOptions, out: Path, data: Path) -> int:
    from malt.data import prepare
    from malt.experiments.cells import Cell
    from malt.experiments.scheduler import run_cells
    from malt.experiments.study import claim_output

    claim_output(out, data.resolve(), kind=DEMO_KIND, overwrite=options.overwrite,
                 other_data="pass --overwrite to replace it or choose another --out")
    if not options.data and not data.exists():
        from malt.sources.simulate import simulate, size_config

        print(f"simulating the '{options.size}' data set into {data} ...", flush=True)
        stats = simulate(size_config(options.size, seed=options.seed), data)
        print(stats.format())
    prepare(data)

    cells = {model: Cell(config)
             for model, config in demo_configs(data, options.seed, options.device).items()}
    runs = out / "runs"
    complete = sum(cell.run_dir(runs).is_complete() for cell in cells.values())
    if complete:
        print(f"reusing {complete} finished run(s) under {runs}", flush=True)
    outcomes = run_cells(list(cells.values()), runs, jobs=1, device=options.device,
                         train=train_with_progress)
    failed = [o for o in outcomes.values() if not o.ok]
    for outcome in failed:
        print(f"{outcome.cell.config.model['name']} FAILED: {outcome.error} "
              f"(see {outcome.cell.run_dir(runs).error_file})")
    if failed:
        print("Fix the cause and run the same command again: finished runs are kept.")
        return 1
    _report(out, {model: cell.run_dir(runs) for model, cell in cells.items()})
    return 0


def _report(out: Path, runs: dict[str, RunDir]) -> None:
    """AUC and GAUC of both runs on the test day, MoAE's gains with their paired intervals,
    and its gain by path complexity."""
    from malt.eval.compare import compare, format_comparison
    from malt.eval.options import DEFAULT_RESAMPLES
    from malt.eval.predictions import Predictions
    from malt.eval.report import complexity_breakdown, format_breakdown

    results = {model: run.load_metrics() for model, run in runs.items()}
    base = results["base"].views["last"]
    print(f"\n{'model':<8}{'AUC':>9}{'GAUC':>9}{'ΔAUC (pt)':>12}{'ΔGAUC (pt)':>12}{'train s':>9}")
    for model, metrics in results.items():
        m = metrics.views["last"]
        print(f"{model:<8}{m.auc:>9.4f}{m.gauc:>9.4f}{100 * (m.auc - base.auc):>+12.2f}"
              f"{100 * (m.gauc - base.gauc):>+12.2f}{metrics.train.seconds:>9.0f}")
    moae, base_predictions = (Predictions.load(runs[m].predictions_file) for m in ("moae", "base"))
    print()
    print(format_comparison(compare([moae], [base_predictions], "last",
                                    resamples=DEFAULT_RESAMPLES, seed=0), "MoAE", "BASE"))
    breakdown = complexity_breakdown(moae, base_predictions, "last")
    print("\nGAUC gain of MoAE over BASE by conversion-path complexity (linear/last per user):")
    print(format_breakdown(breakdown))
    print(f"\nruns and data: {out}  (malt eval --run {runs['moae'].path} --baseline "
          f"{runs['base'].path})")
