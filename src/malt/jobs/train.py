"""One training run end to end, in four steps:

    build     the run's objects from its config, and every check that can fail before the
              run directory is touched (the tracker's included)
    fit       the trainer's pass over the training days (from the checkpoint, resuming)
    evaluate  the final model's predictions on the evaluation days, and their record
    record    predictions, reliability diagrams, `metrics.json` (which marks the run
              complete), TensorBoard's evaluation scalars and the tracker's

Between build and fit, rank 0 claims the run directory and starts it: config, schema, and the
run's log (which gets the step plan and the mask coverage); a warm-started run (`init.from_run`)
also gets its parent's record and its grown vocabs (see `malt.training.warm_start`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from malt.data.cache import Dataset
from malt.data.masks import format_coverage
from malt.eval import report
from malt.eval.calibration_plot import write_reliability_plot
from malt.eval.impressions import impression_metrics
from malt.eval.predictions import Predictions, score_days
from malt.eval.target import target_metrics
from malt.eval.truth import read_truth, truth_metrics
from malt.metrics import ViewMetrics
from malt.runs.checkpoint import refuse_legacy
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.record import ParamCounts, RunMetrics, TrainStats
from malt.runs.tracking import Tracker, ending_status, evaluation_metrics, open_tracker
from malt.training.builder import BuiltRun, build_run
from malt.training.distributed import barrier, launched_rank
from malt.training.progress import ProgressFn
from malt.training.trainer import Trainer
from malt.training.warm_start import WarmStart, plan_warm_start, start_from_parent

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Evaluation:
    """The final model's predictions on the evaluation days, their record, and the global
    step they were made at."""

    predictions: Predictions
    metrics: RunMetrics
    step: int


def train_run(config: RunConfig, out: str | Path, *, resume: bool = False,
              overwrite: bool = False, dataset: Dataset | None = None,
              progress: ProgressFn | None = None,
              announce: Callable[[str], None] | None = None,
              day_end: Callable[[], None] | None = None) -> RunMetrics | None:
    """Train and evaluate one run into `out`; returns its metrics (None on ranks other than 0).

    With `resume`, an unfinished run continues from its checkpoint under its saved config and a
    finished one just returns its metrics. An existing run is never silently replaced: pass
    `overwrite` to start it again, which removes only the files malt wrote there. Data and
    config are checked (the run is built) before anything in `out` is touched. `announce`
    (rank 0) receives the pass's step plan before training, with a warning when it has too few
    steps (see `malt.training.steps`); the run's log always gets it. With `train.tracker` the
    run is also recorded there (see `malt.runs.tracking`). `day_end` is called after each
    training day's checkpoint (the command line hands freed memory back there, see
    `malt.allocator`).
    """
    run = RunDir(Path(out))
    run.check_claim(resume=resume, overwrite=overwrite)
    # One process of a launch writes the run's files, and holds its lock for the whole run.
    with run.output.writing() if launched_rank() == 0 else nullcontext():
        # Again, now that no other process can: one may have written the run since the first
        # check.
        run.check_claim(resume=resume, overwrite=overwrite)
        if resume and run.is_complete():
            return run.load_metrics()
        built, tracker, warm = build(config, run, resume=resume, dataset=dataset)
        with _started(run, built, resume=resume, overwrite=overwrite, announce=announce,
                      warm=warm):
            barrier(built.world)
            with _tracked(tracker, run, built.config):
                trainer = fit(built, run, tracker, resume=resume, progress=progress,
                              day_end=day_end, warm=warm)
                evaluation = evaluate(built, trainer)
                if evaluation is not None:
                    record(run, evaluation, tracker, eval_split=built.config.data.eval_split)
                barrier(built.world)
                tracker.log_artifacts(run.path)
        return None if evaluation is None else evaluation.metrics


def build(config: RunConfig, run: RunDir, *, resume: bool, dataset: Dataset | None
          ) -> tuple[BuiltRun, Tracker, WarmStart | None]:
    """The run's objects (`malt.training.builder.build_run`), its tracker and, warm-starting,
    its parent; resuming, under the config the run saved (on this command's device). A
    resumed warm-started run that has its own checkpoint and vocabs needs its parent no more."""
    if resume:
        refuse_legacy(run.checkpoint)
        saved = run.load_config()
        saved.train.device = config.train.device
        config = saved
    warm = None
    with tempfile.TemporaryDirectory(prefix="malt-vocabs-") as staging:
        vocab_dir = None
        if config.init.from_run is not None:
            if dataset is not None:
                raise ValueError("a warm start prepares its data set with its grown vocabs: "
                                 "pass no dataset")
            if resume and run.checkpoint.is_file() and run.vocab_dir.is_dir():
                vocab_dir = run.vocab_dir
            else:
                warm = plan_warm_start(config, run, Path(staging))
                vocab_dir = warm.vocab_dir
        built = build_run(config, dataset, vocab_dir)
    tracker = open_tracker(built.config.train, run, resume=resume, is_main=built.world.is_main)
    return built, tracker, warm


def fit(built: BuiltRun, run: RunDir, tracker: Tracker, *, resume: bool,
        progress: ProgressFn | None, day_end: Callable[[], None] | None = None,
        warm: WarmStart | None = None) -> Trainer:
    """The trainer after its pass over the training days, continued from the run's checkpoint
    when resuming one that has it, else started from the parent `warm` when given; `day_end`
    runs after each day's checkpoint."""
    trainer = Trainer(built, run, tracker, day_end)
    if resume and run.checkpoint.is_file():
        trainer.restore()
    elif warm is not None:
        parent = start_from_parent(built.model, built.optimisation, warm, built.config)
        trainer.start_from(parent, optimiser=built.config.init.optimiser,
                           source=warm.parent.run.path)
    trainer.fit(progress)
    return trainer


def evaluate(built: BuiltRun, trainer: Trainer) -> Evaluation | None:
    """The trained model's predictions on the evaluation days and the run's record (every rank
    predicts its shard; None on ranks other than 0)."""
    predictions = score_days(built.model, built.eval_days, built.task, built.dataset.schema,
                             batch_size=built.config.train.batch_size, device=built.device,
                             world=built.world, precision=built.config.train.precision)
    if predictions is None:
        return None
    return Evaluation(predictions, run_metrics(built, trainer, predictions),
                      trainer.state.global_step)


def record(run: RunDir, evaluation: Evaluation, tracker: Tracker, *, eval_split: str) -> None:
    """Write the evaluation into the run (`metrics.json` after the files it vouches for) and
    the tracker; warn when the GAUC counts too few users to choose settings or models on."""
    metrics = evaluation.metrics
    evaluation.predictions.save(run.writable(run.predictions_file))
    # metrics.json marks the run complete, so everything else is written before it.
    _plot_calibration(run, evaluation.predictions, metrics.views)
    run.save_metrics(metrics)
    _log_evaluation(run, metrics.views, evaluation.step)
    tracker.log_metrics(evaluation_metrics(metrics.views), evaluation.step)
    log.info("evaluation: %s", metrics.views)
    warning = report.few_users_warning(metrics.views, metrics.per_day, metrics.main,
                                       split=eval_split)
    if warning is not None:
        log.warning("%s", warning)


def run_metrics(built: BuiltRun, trainer: Trainer, predictions: Predictions) -> RunMetrics:
    """The record of a trained run evaluated on `predictions`."""
    truth = read_truth(built.dataset.schema, [d.source for d in built.eval_days])
    return RunMetrics(
        main=built.task.main, views=report.evaluate(predictions),
        eval_days=tuple(d.name for d in built.eval_days), eval_rows=int(len(predictions.user)),
        train=TrainStats(days=len(built.train_days), rows=sum(d.rows for d in built.train_days),
                         steps=trainer.state.global_step,
                         seconds=round(trainer.state.seconds, 2), world_size=built.world.size,
                         data_wait_seconds=round(trainer.state.data_wait_seconds, 3)),
        params=ParamCounts(*built.model.parameter_counts()),
        target=None if predictions.target_action is None else target_metrics(predictions),
        coverage=built.coverage, per_day=report.evaluate_by_day(predictions),
        truth=truth_metrics(predictions, truth),
        impressions=impression_metrics(predictions, truth))


@contextmanager
def _started(run: RunDir, built: BuiltRun, *, resume: bool, overwrite: bool,
             announce: Callable[[str], None] | None, warm: WarmStart | None = None
             ) -> Iterator[None]:
    """On rank 0, the run directory claimed and started (config, schema, a warm start's parent
    and vocabs, the run's log with the step plan and the mask coverage) for as long as the run
    goes on."""
    if not built.world.is_main:
        yield
        return
    run.claim(resume=resume, overwrite=overwrite)
    run.save_config(built.config)
    run.save_schema(built.dataset.schema)
    parent = None
    if warm is not None:
        warm.vocabs.write(run.vocab_dir, run.writable)
        parent = warm.record(built.config)
        run.save_parent(parent)
    handler = run.attach_log()
    try:
        if parent is not None:
            log.info("%s", parent.describe())
            if announce is not None:
                announce(parent.describe())
        plan = built.plan.describe()
        log.info("%s", plan)
        if announce is not None:
            announce(plan)
        if built.coverage is not None:
            log.info("training rows with mask 1 per action:\n%s",
                     format_coverage(built.coverage))
        yield
    finally:
        logging.getLogger("malt").removeHandler(handler)
        handler.close()


@contextmanager
def _tracked(tracker: Tracker, run: RunDir, config: RunConfig) -> Iterator[None]:
    """The tracked run started, and closed with the status the run ends with."""
    try:
        tracker.start(run, config)
        yield
        tracker.close("FINISHED")
    except BaseException as error:
        tracker.close(ending_status(error))
        raise


def _plot_calibration(run: RunDir, predictions: Predictions, views: dict[str, ViewMetrics]
                      ) -> None:
    """A reliability diagram of every evaluated view, on the labels its metrics use."""
    for view in views:
        labels = (predictions.label_weights(view) > 0).astype(np.float64)
        write_reliability_plot(run.writable(run.reliability_plot(view)), predictions.view(view),
                               labels, view)


def _log_evaluation(run: RunDir, views: dict[str, ViewMetrics], step: int) -> None:
    """The evaluation metrics as TensorBoard scalars `eval/<view>/<metric>` at the last step."""
    from torch.utils.tensorboard import SummaryWriter

    run.writable(run.tensorboard_events)
    with SummaryWriter(str(run.tensorboard_dir)) as writer:
        for view, metrics in views.items():
            for name, value in metrics.numbers().items():
                writer.add_scalar(f"eval/{view}/{name}", value, step)
