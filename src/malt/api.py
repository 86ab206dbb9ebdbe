"""The Python API: simulate data, prepare it, train a run, load it, score new rows, export.

    import malt

    data = malt.simulate("data/tiny", size="tiny")
    run = malt.train({"data": {"path": str(data)}, "model": {"name": "moae"},
                      "task": {"main": "last", "aux": ["first", "linear"]}}, "runs/moae")
    print(run.metrics.main_metrics.gauc)
    run.calibrate("isotonic")         # optional: calibrators fitted on held-out days
    scores = run.predict("data/tiny/test/test.parquet")   # a pandas DataFrame
    run.export("moae.onnx")

Every function raises `malt.errors.ConfigError` or `DataError` on bad input, with the message
the command line prints; so are errors of the operating system (a file malt cannot read or
write: permissions, a full disk): `ConfigError`, or `DataError` for a data file, with the
`OSError` as its `__cause__`.

No function changes settings of the whole process: `malt.allocator.retain_freed_memory()`, which
the `malt` command applies, is the program's own choice (faster training and scoring on glibc;
`malt.train` then also hands the memory back at each day's end).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from malt.allocator import release_freed_memory
from malt.config_files import merge_tables, read_key_value_file
from malt.data.cache import Dataset
from malt.data.cache import prepare as prepare_cache
from malt.data.schema import Schema, schema_for
from malt.deploy.export import ExportFormat
from malt.deploy.export import export as export_trained
from malt.deploy.predict import Scorer, Source, file_sources, table_source
from malt.errors import ConfigError, describe_os_error
from malt.eval.calibrate import calibrate_run
from malt.eval.compare import Comparison, compare_runs
from malt.eval.options import DEFAULT_RESAMPLES
from malt.jobs.train import train_run
from malt.runs import load as run_loader
from malt.runs.calibration import Calibration
from malt.runs.config import DEFAULT_SEED, RunConfig
from malt.runs.directory import RunDir, with_parent_config
from malt.runs.lineage import Parent
from malt.runs.load import TrainedModel
from malt.runs.options import CalibrationMethod, CalibrationSlices
from malt.runs.record import RunMetrics

__all__ = ["Run", "compare", "export", "load_run", "prepare", "simulate", "train"]


def _os_errors_as_config_errors(function: Callable) -> Callable:
    """`function`, raising an operating-system error that no reader or writer put into words
    as a `ConfigError` naming its path (the API's last line of defence, as the CLI's)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            raise ConfigError(describe_os_error(exc)) from exc

    return wrapper


@_os_errors_as_config_errors
def simulate(out: str | Path, *, size: str = "tiny", seed: int = DEFAULT_SEED,
             scenario: str = "mac", overwrite: bool = False) -> Path:
    """Write a simulated data set in the MAC layout to `out` and return its path.

    `size`: tiny (~50k clicks), small (~1M), medium (~10M) or mac (~79M); `scenario`: `mac`
    (attribution labels) or `app-promotion` (incomplete multi-label data for KAML).
    """
    if scenario == "app-promotion":
        from malt.sources.simulate.app_promotion import simulate_app_promotion
        from malt.sources.simulate.app_promotion import size_config as app_size

        simulate_app_promotion(app_size(size, seed=seed), out, overwrite=overwrite)
    elif scenario == "mac":
        from malt.sources.simulate import simulate as simulate_mac
        from malt.sources.simulate import size_config

        simulate_mac(size_config(size, seed=seed), out, overwrite=overwrite)
    else:
        from malt.errors import ConfigError

        raise ConfigError(f"unknown scenario '{scenario}', expected 'mac' or 'app-promotion'")
    return Path(out)


@_os_errors_as_config_errors
def prepare(data: str | Path, *, schema: str | Path | Schema | None = None,
            build_vocabs: bool = False, min_count: int = 1) -> Dataset:
    """Validate and cache the data set at `data` (MAC layout) and return it; with
    `build_vocabs`, first write the vocabs it lacks from its training days."""
    if not isinstance(schema, Schema):
        schema = schema_for(data, schema)
    if build_vocabs:
        from malt.data.vocab_build import build_vocabs as write_vocabs

        write_vocabs(data, schema, min_count=min_count)
    return prepare_cache(data, schema)


@_os_errors_as_config_errors
def train(config: RunConfig | Mapping[str, Any] | str | Path, out: str | Path, *,
          resume: bool = False, overwrite: bool = False, init_from: str | Path | None = None,
          init_optimiser: bool = False) -> Run:
    """Train and evaluate one run into the directory `out`; returns the finished run.

    `config`: a `RunConfig`, its sections as a mapping (`{"data": {"path": ...}, "model":
    {"name": "moae"}, "task": {...}, "train": {...}}`), or a config file (TOML, YAML, JSON).
    `init_from` warm-starts it from that finished run (`init.from_run`; `init_optimiser`:
    with its optimiser state, `init.optimiser`): a mapping or file then says only what
    changes from the parent's config, such as the days (`data.train_from`, `data.train_days`).
    """
    if isinstance(config, RunConfig):
        if init_from is not None:
            config = RunConfig.from_dict(config.to_dict() | {"init": {
                "from_run": str(init_from), "optimiser": init_optimiser}})
    else:
        tree = read_key_value_file(config) if isinstance(config, (str, Path)) else dict(config)
        if init_from is not None:
            tree = merge_tables(tree, {"init": {"from_run": str(init_from),
                                                "optimiser": init_optimiser}})
        config = RunConfig.from_dict(with_parent_config(tree), source=str(
            config) if isinstance(config, (str, Path)) else "config")
    train_run(config, out, resume=resume, overwrite=overwrite, day_end=release_freed_memory)
    return load_run(out)


@_os_errors_as_config_errors
def load_run(path: str | Path, *, vocabs: str | Path | None = None) -> Run:
    """The finished run in `path`; `vocabs` when its training data has moved (see
    `malt.runs.load.load_run`)."""
    run = Run(Path(path), vocabs=vocabs)
    run.metrics  # noqa: B018 - a run without metrics is refused here, not at first use
    return run


@dataclass
class Run:
    """A finished training run."""

    path: Path
    vocabs: str | Path | None = field(default=None, repr=False)

    @cached_property
    def config(self) -> RunConfig:
        """The run's resolved config."""
        return RunDir(self.path).load_config()

    @cached_property
    def parent(self) -> Parent | None:
        """The run it was warm-started from, and how (None: trained from scratch)."""
        return RunDir(self.path).load_parent()

    @property
    def lineage(self) -> list[Path]:
        """Its parents, the nearest first, back to the run trained from scratch."""
        return RunDir(self.path).lineage()

    @cached_property
    def metrics(self) -> RunMetrics:
        """The evaluation on the run's evaluation days (`metrics.views[view].gauc`, ...)."""
        return RunDir(self.path).load_metrics()

    @cached_property
    @_os_errors_as_config_errors
    def trained(self) -> TrainedModel:
        """The loaded model with its schema and vocabs (loaded on first use)."""
        return run_loader.load_run(self.path, vocabs=self.vocabs)

    @property
    def calibration(self) -> Calibration | None:
        """The views' calibrators (`calibrate`), None when the run has none."""
        return self.trained.calibration

    @_os_errors_as_config_errors
    def calibrate(self, method: CalibrationMethod = "isotonic", *, days: int | None = None,
                  by: CalibrationSlices | None = None, device: str = "cpu") -> Calibration:
        """Fit a calibrator per view (and, with `by="target_action"`, per target action) on the
        run's last `days` training days (default: its `validation_days`) and save them in the
        run, as `malt calibrate` does; `predict` and `export` apply them from then on."""
        calibration, _ = calibrate_run(self.trained, method, days, by=by, device=device)
        self.trained.calibration = calibration
        return calibration

    @_os_errors_as_config_errors
    def predict(self, data: pa.Table | pd.DataFrame | str | Path, *, keep: tuple[str, ...] = (),
                engine: str = "torch", device: str = "cpu", calibrated: bool = True,
                precision: str = "fp32") -> pd.DataFrame:
        """Scores of the rows of `data` (a table, a data frame, a parquet file or a directory
        as `malt predict` reads it): one column `p_<view>` per predicted view (through the
        run's calibrators when it has some and `calibrated`), the user column and the `keep`
        columns, in row order. `precision="bf16"` runs the forward pass under bfloat16
        autocast (torch engine)."""
        scorer = Scorer(self.trained, engine=engine, device=device, keep=tuple(keep),
                        calibrated=calibrated, precision=precision)
        sources: list[Source]
        if isinstance(data, pd.DataFrame):
            sources = [table_source(pa.Table.from_pandas(data, preserve_index=False))]
        elif isinstance(data, pa.Table):
            sources = [table_source(data)]
        else:
            sources = file_sources(data)
        batches = list(scorer.batches(sources))
        return pa.Table.from_batches(batches, schema=scorer.check(sources)).to_pandas()

    @_os_errors_as_config_errors
    def export(self, out: str | Path, format: ExportFormat = "onnx", *,
               overwrite: bool = False, calibrated: bool = True) -> Path:
        """Write the model to `out` as ONNX or TorchScript (see `malt.deploy.export`), with the
        run's calibrators in the graph when it has some and `calibrated`."""
        export_trained(self.trained, out, format, overwrite=overwrite, calibrated=calibrated)
        return Path(out)


@_os_errors_as_config_errors
def export(run: Run | str | Path, out: str | Path, format: ExportFormat = "onnx", *,
           overwrite: bool = False) -> Path:
    """Export the run `run` (a `Run` or its directory) to `out`; see `Run.export`."""
    if not isinstance(run, Run):
        run = load_run(run)
    return run.export(out, format, overwrite=overwrite)


@_os_errors_as_config_errors
def compare(runs: Sequence[Run | str | Path], baseline: Sequence[Run | str | Path], *,
            view: str | None = None, metrics: Sequence[str] = ("auc", "gauc", "logloss"),
            resamples: int = DEFAULT_RESAMPLES, level: float = 0.95,
            seed: int = DEFAULT_SEED) -> Comparison:
    """The runs (one per training seed) against the baseline's, as `malt compare` does: each
    metric's difference with its paired bootstrap interval over users and seeds, and
    `Comparison.verdict`. `view` defaults to the first run's main view."""
    return compare_runs([r.path if isinstance(r, Run) else r for r in runs],
                        [r.path if isinstance(r, Run) else r for r in baseline], view=view,
                        metrics=metrics, resamples=resamples, level=level, seed=seed)
