"""A run directory: the durable record of one training run.

    <run>/config.json        resolved RunConfig (enough to reproduce the run)
    <run>/schema.json        the data set's schema, so the run can score data on its own
    <run>/log.txt            the run's log
    <run>/tb/                TensorBoard scalars
    <run>/checkpoint.safetensors  latest checkpoint (day boundary, or where it was
                             interrupted; see `malt.runs.checkpoint`)
    <run>/metrics.json       evaluation metrics, written when training has finished (strict
                             JSON: an undefined metric is null, its view's `note` says why)
    <run>/predictions.npz    scores of every evaluated view on the evaluation day
    <run>/reliability-<view>.png  reliability diagram of each evaluated view
    <run>/calibration.json   the views' calibrators (`malt calibrate`; see
                             `malt.runs.calibration`)
    <run>/mlflow.json        the MLflow run it is tracked in (`--tracker mlflow`)
    <run>/parent.json        a warm-started run's parent (see `malt.runs.lineage`)
    <run>/vocabs/            a warm-started run's vocabs: its parent's, grown by its days' ids
    <run>/.malt-manifest.json  what malt wrote here (see `malt.outputs`)

Every file is recorded in the manifest before it is written, so replacing a run removes
exactly what malt wrote and nothing a user put beside it.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malt.config_files import merge_tables, read_key_value_file
from malt.data.schema import Schema
from malt.errors import ConfigError, file_error
from malt.outputs import OutputDir, atomic_write_text
from malt.runs.calibration import Calibration
from malt.runs.checkpoint import LEGACY_NAME, convert_legacy_checkpoint
from malt.runs.config import RunConfig
from malt.runs.lineage import Parent, inherited_config
from malt.runs.record import RunMetrics

RUN_KIND = "run"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory; creating the object touches nothing on disk."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def output(self) -> OutputDir:
        return OutputDir(self.path, RUN_KIND)

    def exists(self) -> bool:
        """The directory holds a malt run that has started (its config is saved)."""
        return self.output.is_ours() and self.config_file.is_file()

    def check_claim(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Raise unless `claim` with the same arguments would succeed; touches nothing."""
        if resume and not self.exists():
            raise ConfigError(f"{self.path} holds no malt run to resume")
        self.output.check_writable(**self._claim_options(resume, overwrite))

    def claim(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Make the directory ready for the run (see `OutputDir.claim`): a new run needs an
        absent or empty directory (or one where a run failed before it started), `resume` a
        started run; `overwrite` removes an earlier run's files, never anything else."""
        self.check_claim(resume=resume, overwrite=overwrite)
        self.output.claim(**self._claim_options(resume, overwrite))

    def _claim_options(self, resume: bool, overwrite: bool) -> dict:
        return {"overwrite": overwrite, "keep": resume or not self.exists(),
                "hint": "use --resume to continue it or --overwrite to start again"}

    def writable(self, path: Path) -> Path:
        """`path` (inside the run), recorded in the manifest as malt's before it is written."""
        return self.output.writable(path)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def schema_file(self) -> Path:
        return self.path / "schema.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.safetensors"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def predictions_file(self) -> Path:
        return self.path / "predictions.npz"

    @property
    def calibration_file(self) -> Path:
        return self.path / "calibration.json"

    def save_calibration(self, calibration: Calibration) -> None:
        """`calibration.json`, replacing an earlier calibration (the caller holds the run's
        lock: `self.output.writing()`)."""
        atomic_write_text(self.writable(self.calibration_file), calibration.to_json())

    def reliability_plot(self, view: str) -> Path:
        """The reliability diagram (calibration plot) of the evaluated view `view`."""
        return self.path / f"reliability-{view}.png"

    @property
    def log_file(self) -> Path:
        return self.path / "log.txt"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tb"

    @property
    def tensorboard_events(self) -> Path:
        """The name pattern of TensorBoard's event files (their names are TensorBoard's)."""
        return self.tensorboard_dir / "events.out.tfevents.*"

    @property
    def tracking_file(self) -> Path:
        """Where the run is tracked (see `malt.runs.tracking`), so that a resumed run
        continues it."""
        return self.path / "mlflow.json"

    @property
    def parent_file(self) -> Path:
        return self.path / "parent.json"

    @property
    def task_weights_file(self) -> Path:
        """The weight each task had over training, of a run with a task-weighting grad method
        (see `malt.training.weights_table`)."""
        return self.path / "task_weights.csv"

    @property
    def vocab_dir(self) -> Path:
        """The run's own vocabs (a warm-started run's); other runs read their data set's."""
        return self.path / "vocabs"

    @property
    def error_file(self) -> Path:
        """The traceback of a failed study cell."""
        return self.path / "error.txt"

    def upgrade_checkpoint(self) -> None:
        """Rewrite the run's pickled checkpoint of an earlier malt in the safetensors format,
        then remove the pickle (see `malt.runs.checkpoint.convert_legacy_checkpoint`)."""
        legacy = self.path / LEGACY_NAME
        convert_legacy_checkpoint(self.path, self.writable(self.checkpoint))
        legacy.unlink()

    def is_complete(self) -> bool:
        return self.metrics_file.is_file()

    def save_config(self, config: RunConfig) -> None:
        atomic_write_text(self.writable(self.config_file),
                          json.dumps(config.to_dict(), indent=2, allow_nan=False))

    def load_config(self) -> RunConfig:
        if not self.config_file.is_file():
            raise ConfigError(f"{self.path} is not a run directory (no config.json)")
        return RunConfig.from_dict(self._read_json(self.config_file),
                                   source=str(self.config_file))

    def save_schema(self, schema: Schema) -> None:
        atomic_write_text(self.writable(self.schema_file),
                          json.dumps(schema.to_dict(), indent=2, allow_nan=False))

    def load_schema(self) -> Schema | None:
        """The schema the run was trained on; None for runs saved before malt kept it."""
        if not self.schema_file.is_file():
            return None
        return Schema.from_dict(self._read_json(self.schema_file), source=str(self.schema_file))

    def save_parent(self, parent: Parent) -> None:
        atomic_write_text(self.writable(self.parent_file),
                          json.dumps(parent.to_dict(), indent=2, allow_nan=False))

    def load_parent(self) -> Parent | None:
        """The run this one was warm-started from; None for a run trained from scratch."""
        if not self.parent_file.is_file():
            return None
        return Parent.from_dict(self._read_json(self.parent_file), str(self.parent_file))

    def lineage(self) -> list[Path]:
        """The parents of this run, the nearest first, back to a run trained from scratch (or
        to one that is no longer there)."""
        chain: list[Path] = []
        parent = self.load_parent()
        while parent is not None and Path(parent.path) not in chain:
            chain.append(Path(parent.path))
            older = RunDir(Path(parent.path))
            parent = older.load_parent() if older.parent_file.is_file() else None
        return chain

    def save_metrics(self, metrics: RunMetrics) -> None:
        """`metrics.json`, strict JSON: undefined (NaN) metrics are null, with a warning that
        gives the views' notes."""
        tree, undefined = _null_for_nan(metrics.to_dict())
        if undefined:
            notes = {f"{day}{view}": m.note for day, views in
                     [("", metrics.views), *((f"{d} ", v) for d, v in metrics.per_day.items())]
                     for view, m in views.items() if m.note}
            log.warning("%s: %d undefined metric(s) written as null%s", self.metrics_file,
                        undefined, "".join(f"; {k}: {n}" for k, n in notes.items()))
        atomic_write_text(self.writable(self.metrics_file),
                          json.dumps(tree, indent=2, allow_nan=False))

    def load_metrics(self) -> RunMetrics:
        if not self.metrics_file.is_file():
            raise ConfigError(f"run {self.path} has no metrics yet (unfinished run?)")
        return RunMetrics.from_dict(self._read_json(self.metrics_file))

    def _read_json(self, path: Path) -> dict[str, Any]:
        """A JSON file of the run; unreadable, damaged or not a table of keys: `ConfigError`."""
        try:
            return read_key_value_file(path, "run")
        except ConfigError as exc:
            if isinstance(exc.__cause__, OSError):  # the file is fine, its access is not
                raise
            raise ConfigError(f"{exc} (written by malt: restore it from a copy, or train the "
                              "run again)") from exc

    def attach_log(self) -> logging.Handler:
        """Send the `malt` loggers' INFO messages to the run's log file as well."""
        handler = _RunLog(self.writable(self.log_file))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        logger = logging.getLogger("malt")
        logger.addHandler(handler)
        logger.setLevel(min(logger.getEffectiveLevel(), logging.INFO))
        return handler


def with_parent_config(tree: dict[str, Any]) -> dict[str, Any]:
    """The config tree `tree` of a warm start (`init.from_run`) over its parent's saved config
    (without the parent's days: see `malt.runs.lineage.inherited_config`), so that only what
    changes needs saying; any other tree as it is."""
    init = tree.get("init")
    parent = init.get("from_run") if isinstance(init, dict) else None
    if not isinstance(parent, (str, Path)):
        return tree
    if not Path(parent).is_dir():
        raise ConfigError(f"init.from_run = {parent}: there is no such run directory")
    return merge_tables(inherited_config(RunDir(Path(parent)).load_config().to_dict()), tree)


def legacy_runs(path: Path) -> list[RunDir]:
    """The runs at or under `path` that hold only a pickled checkpoint of an earlier malt."""
    found = []
    for legacy in sorted(Path(path).rglob(LEGACY_NAME)):
        run = RunDir(legacy.parent)
        if run.output.is_ours() and not run.checkpoint.is_file():
            found.append(run)
    return found


def _null_for_nan(tree: Any) -> tuple[Any, int]:
    """`tree` with every NaN float replaced by None, and how many were replaced."""
    if isinstance(tree, float) and math.isnan(tree):
        return None, 1
    if isinstance(tree, dict):
        items = {k: _null_for_nan(v) for k, v in tree.items()}
        return {k: v for k, (v, _) in items.items()}, sum(n for _, n in items.values())
    if isinstance(tree, (list, tuple)):
        items = [_null_for_nan(v) for v in tree]
        return [v for v, _ in items], sum(n for _, n in items)
    return tree, 0


class _RunLog(logging.FileHandler):
    """A run's log file; one that cannot be written (a full disk) ends the command with an
    error naming it, where logging would print a traceback for every message and go on."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            raise file_error(error, self.baseFilename, action="write") from error
        super().handleError(record)
