"""A finished run loaded back: its config, the schema it was trained on, id lookups, task,
trained model, and its calibrators when it has some. Everything that reads a finished run's
model goes through `load_run`: `malt eval --data`, `malt predict`, `malt export`, the Python
API's `Run` and a warm start (which also takes the finished checkpoint's optimiser and random
states)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from malt.data.layout import find_layout
from malt.data.lookups import Lookup, load_lookups, vocab_info
from malt.data.schema import Schema, schema_for
from malt.data.task import Task
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.models.building import build_spec
from malt.models.model import MaltModel
from malt.runs.calibration import Calibration, load_calibration
from malt.runs.checkpoint import Checkpoint, load_checkpoint
from malt.runs.config import RunConfig, build_task
from malt.runs.directory import RunDir
from malt.runs.lineage import Parent


@dataclass
class TrainedModel:
    """Everything needed to score rows with a finished run's model."""

    run: RunDir
    config: RunConfig
    schema: Schema
    """The schema the run was trained on: the columns its model reads, whatever data it scores."""
    task: Task
    lookups: dict[str, Lookup]
    """Column -> raw id lookup (the run's vocabs and hash buckets)."""
    vocab: VocabInfo
    model: MaltModel
    """The trained model, in eval mode, on the CPU."""
    parent: Parent | None = None
    """The run it was warm-started from (None: trained from scratch)."""
    checkpoint: Checkpoint | None = None
    """The finished checkpoint (optimiser state, random states, position), when asked for."""
    calibration: Calibration | None = None
    """The views' calibrators (`malt calibrate`), None when the run has none."""

    @property
    def views(self) -> tuple[str, ...]:
        """The predicted views (every label view; never `cat`)."""
        return self.task.label_views


def load_run(run_path: str | Path, *, vocabs: str | Path | None = None,
             with_checkpoint: bool = False) -> TrainedModel:
    """Load the finished run at `run_path` (with its finished checkpoint: `with_checkpoint`).

    The schema is the run's own (`schema.json`, saved when it started): the data a run scores
    is read with the columns its model was trained on, whatever schema that data declares.
    Runs saved before malt kept it take the schema of their training data. The vocabs are
    `vocabs` (a data directory in the MAC layout or a directory of `<column>.json` files), else
    the run's own (a warm-started run's `vocabs/`), else those of the data set the run was
    trained on (its `data.path`). The table sizes must be those the model was trained with.
    """
    run = RunDir(Path(run_path))
    if not run.path.is_dir():
        raise ConfigError(f"{run.path} is not there (no such run directory)")
    config = run.load_config()
    checkpoint = load_checkpoint(run.checkpoint)
    if not checkpoint.state.finished:
        raise ConfigError(f"run {run.path} has not finished training; resume it first")
    schema = run.load_schema() or schema_for(config.data.path, config.data.schema)
    if vocabs is None and run.vocab_dir.is_dir():
        vocabs = run.vocab_dir
    lookups = load_lookups(schema, vocab_directory(config, vocabs))
    info = vocab_info(schema, lookups)
    task = build_task(config)
    model = build_spec(config.model_spec, schema, info, task, config.model_config())
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError as exc:
        raise ConfigError(f"the model of {run.path} does not fit these vocabs (its embedding "
                          f"tables have other sizes: were the vocabs rebuilt since training?)"
                          ) from exc
    calibration = load_calibration(run.calibration_file)
    if calibration is not None:
        calibration.check_views(task.label_views, str(run.calibration_file))
    return TrainedModel(run=run, config=config, schema=schema, task=task, lookups=lookups,
                        vocab=info, model=model.eval(), parent=run.load_parent(),
                        checkpoint=checkpoint if with_checkpoint else None,
                        calibration=calibration)


def vocab_directory(config: RunConfig, vocabs: str | Path | None) -> Path:
    """The directory of the vocab files: `vocabs` (a MAC-layout data set or a vocab folder),
    else the training data's."""
    if vocabs is not None:
        path = Path(vocabs)
        return path / "vocabs" if (path / "vocabs").is_dir() else path
    if config.data.path is None:
        raise ConfigError("the run's config names no data set; pass the vocabs (--vocabs DIR)")
    root = Path(config.data.path)
    if not root.is_dir():
        raise ConfigError(f"the run's training data {root} is not there (relative to "
                          f"{Path.cwd()}); pass its vocabs with --vocabs DIR")
    return find_layout(root).vocab_dir
