"""Experiment tracking besides TensorBoard: a run's config, step scalars, evaluation and files.

`--tracker mlflow` records every run (rank 0 only) in an MLflow run:

- params: the resolved run config flattened to dotted keys (`train.lr`, `task.main`,
  `model.encoder.embed_dim`); strings as they are, other values as JSON, a value longer than
  MLflow's limit cut to it (ending in `...`; `config.json` among the artifacts has it whole);
- tags: `malt.version`, `malt.model`, `malt.main_view`, `malt.run_dir`;
- metrics: the scalars TensorBoard gets at the same steps (`loss/<view>`, `lr`,
  `samples_per_s`, step = global step), then the evaluation as `eval.<view>.<metric>` at the
  last step, the values of `metrics.json` (NaN included: every MLflow store keeps it as NaN);
- artifacts, when the run has finished: every file malt wrote in the run directory.

The MLflow run's id is kept in `<run>/mlflow.json`, so `malt train --resume` continues the same
MLflow run (its step metrics go on from the checkpoint's step); `--overwrite` removes that file
with the rest of the run and starts a new MLflow run. A finished run ends FINISHED, a failed one
FAILED, and an interrupted one (Ctrl-C, a stop request) KILLED: stopped, not broken, and set
RUNNING again by the resume. Params are immutable in MLflow: a resumed leg logs only those the
run lacks (the MLflow run keeps the first leg's `train.device`).

MLflow 3 refuses its file store unless `MLFLOW_ALLOW_FILE_STORE` is true; that store is malt's
default (MLflow's own default, sqlite, needs SQLAlchemy and Alembic, which `mlflow-skinny`
lacks), so malt sets the variable for a file-store URI unless the environment already sets it.
A process that reads the store back must opt in too (docs/training.md, "Reading the store
back"); a `sqlite:` or server URI needs no opt-in.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from malt.errors import ConfigError, Interrupted
from malt.metrics import ViewMetrics
from malt.outputs import atomic_write_text, own_files
from malt.runs.config import RunConfig, TrainConfig
from malt.runs.directory import RunDir

log = logging.getLogger(__name__)

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
INSTALL_HINT = "pip install 'malt[mlflow]'"
_CUT = "..."


class Tracker:
    """Where a run's record goes besides TensorBoard. This one drops everything: it is the
    tracker of `--tracker none` and of every rank but 0."""

    def start(self, run: RunDir, config: RunConfig) -> None:
        """Open the tracked run of `run` (or reopen it, resuming) and log the config."""

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        """Scalars of one step (the global step)."""

    def log_artifacts(self, directory: Path) -> None:
        """Every file malt wrote in `directory` (what its manifest lists)."""

    def close(self, status: RunStatus) -> None:
        """End the tracked run with `status`."""


def ending_status(error: BaseException) -> RunStatus:
    """The status of a run stopped by `error`: KILLED when it was interrupted (it can be
    resumed), FAILED otherwise."""
    return "KILLED" if isinstance(error, (Interrupted, KeyboardInterrupt)) else "FAILED"


def open_tracker(config: TrainConfig, run: RunDir, *, resume: bool, is_main: bool) -> Tracker:
    """The tracker `config.tracker` names, ready to `start`.

    Every check that can fail runs here, before the run directory is touched: MLflow installed
    (on every rank, so that they fail alike), then on rank 0 the store reachable, the
    experiment usable and, resuming, the MLflow run to continue found. Ranks other than 0 get
    the no-op tracker.
    """
    if config.tracker == "none":
        return Tracker()
    _require_mlflow()
    if not is_main:
        return Tracker()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    record = _read_record(run) if resume else None
    uri = record["tracking_uri"] if record else resolve_tracking_uri(config.tracking_uri)
    if urlparse(uri).scheme in ("", "file"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        client = MlflowClient(tracking_uri=uri)
        continued = _live_run(client, record["run_id"]) if record else None
        if record and continued is None:
            log.warning("the MLflow run %s recorded in %s is gone from %s: starting a new one",
                        record["run_id"], run.tracking_file, uri)
        experiment = None if continued else _experiment_id(client, config.mlflow_experiment)
    except (MlflowException, OSError) as exc:
        raise ConfigError(f"MLflow tracking at {uri}: {exc}") from None
    return MlflowTracker(client, uri, experiment_id=experiment, continued=continued)


def resolve_tracking_uri(configured: str | None) -> str:
    """`configured`, else $MLFLOW_TRACKING_URI, else the file store `./mlruns` as an absolute
    `file:` URI (so a resume from another directory finds it)."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or \
        Path("mlruns").absolute().as_uri()


def run_params(tree: Mapping[str, Any], limit: int, prefix: str = "") -> dict[str, str]:
    """A config tree flattened to dotted keys (`train.lr`), each value as text: strings as they
    are, anything else as JSON (an empty table is `{}`); a value longer than `limit` is cut to
    `limit` characters ending in `...`."""
    params: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            params.update(run_params(value, limit, f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
        params[name] = text if len(text) <= limit else text[:limit - len(_CUT)] + _CUT
    return params


def evaluation_metrics(views: Mapping[str, ViewMetrics]) -> dict[str, float]:
    """`eval.<view>.<metric>` of every evaluated view."""
    return {f"eval.{view}.{name}": value for view, metrics in views.items()
            for name, value in metrics.numbers().items()}


def run_tags(config: RunConfig, run: RunDir) -> dict[str, str]:
    """What a tracked run is tagged with: malt's version, the model, the main view, the run
    directory."""
    from malt._version import __version__

    return {"malt.version": __version__, "malt.model": config.model["name"],
            "malt.main_view": config.task.main, "malt.run_dir": str(run.path.absolute())}


class MlflowTracker(Tracker):
    """Logs to one MLflow run through `client` (see the module docstring)."""

    def __init__(self, client: Any, tracking_uri: str, *, experiment_id: str | None,
                 continued: Any | None):
        """`continued`: the MLflow run to continue (resuming); else a new one is created in
        `experiment_id`."""
        self.client, self.tracking_uri = client, tracking_uri
        self.experiment_id, self.continued = experiment_id, continued
        self.run_id: str | None = None

    def start(self, run: RunDir, config: RunConfig) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        params = run_params(config.to_dict(), MAX_PARAM_VAL_LENGTH)
        if self.continued is not None:
            self.run_id = self.continued.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            logged = self.continued.data.params
            kept = sorted(k for k in params if k in logged and logged[k] != params[k])
            if kept:
                log.info("MLflow keeps the first leg's params %s", ", ".join(kept))
            params = {k: v for k, v in params.items() if k not in logged}
        else:
            created = self.client.create_run(self.experiment_id, run_name=run.path.name,
                                             tags=run_tags(config, run))
            self.run_id = created.info.run_id
            atomic_write_text(run.writable(run.tracking_file), json.dumps(
                {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id,
                 "run_id": self.run_id}, indent=2, allow_nan=False))
        log.info("tracking in MLflow run %s at %s", self.run_id, self.tracking_uri)
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in params.items()])

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step)
                                                    for k, v in values.items()])

    def log_artifacts(self, directory: Path) -> None:
        for path in own_files(directory):
            folder = path.parent.relative_to(directory).as_posix()
            self.client.log_artifact(self.run_id, str(path),
                                     artifact_path=None if folder == "." else folder)

    def close(self, status: RunStatus) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


def _require_mlflow() -> None:
    try:
        import mlflow.tracking  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--tracker mlflow needs MLflow, which cannot be imported ({exc}): "
                          f"{INSTALL_HINT}") from None


def _read_record(run: RunDir) -> dict[str, str] | None:
    """The MLflow run recorded in `run`, or None when the run has no record."""
    if not run.tracking_file.is_file():
        return None
    try:
        record = json.loads(run.tracking_file.read_text())
        return {key: str(record[key]) for key in ("tracking_uri", "run_id")}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{run.tracking_file} is not a record of an MLflow run ({exc})") \
            from None


def _live_run(client: Any, run_id: str) -> Any | None:
    """The MLflow run `run_id`, or None when it was deleted or never existed."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return found if found.info.lifecycle_stage == "active" else None


def _experiment_id(client: Any, name: str) -> str:
    """The id of the experiment `name`, created when missing (by this run or, when runs start
    together, by another)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage != "active":
        raise ConfigError(f"the MLflow experiment '{name}' is deleted: restore it, or pass "
                          "--mlflow-experiment with another name")
    return experiment.experiment_id
