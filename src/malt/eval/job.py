"""One training run end to end: build it, train it, evaluate it, record it in its run directory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from malt.data.cache import Dataset
from malt.data.masks import format_coverage
from malt.eval.calibration_plot import write_reliability_plot
from malt.eval.predictions import Predictions, score_days
from malt.eval.report import evaluate, evaluate_by_day
from malt.eval.target import target_metrics
from malt.metrics import ViewMetrics
from malt.training.builder import BuiltRun, build_run
from malt.training.checkpoint import refuse_legacy
from malt.training.config import RunConfig
from malt.training.distributed import barrier, launched_rank
from malt.training.progress import ProgressFn
from malt.training.run_dir import ParamCounts, RunDir, RunMetrics, TrainStats
from malt.training.tracking import ending_status, evaluation_metrics, open_tracker
from malt.training.trainer import Trainer

log = logging.getLogger(__name__)

MIN_VALIDATION_USERS = 500
"""Below this many users in the validation GAUC, differences between λ or learning-rate
settings are mostly noise."""


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
    run is also recorded there (see `malt.training.tracking`). `day_end` is called after each
    training day's checkpoint (the command line hands freed memory back there, see
    `malt.allocator`).
    """
    run = RunDir(Path(out))
    run.check_claim(resume=resume, overwrite=overwrite)
    # One process of a launch writes the run's files, and holds its lock for the whole run.
    with run.output.writing() if launched_rank() == 0 else nullcontext():
        return _train(config, run, resume=resume, overwrite=overwrite, dataset=dataset,
                      progress=progress, announce=announce, day_end=day_end)


def _train(config: RunConfig, run: RunDir, *, resume: bool, overwrite: bool,
           dataset: Dataset | None, progress: ProgressFn | None,
           announce: Callable[[str], None] | None,
           day_end: Callable[[], None] | None) -> RunMetrics | None:
    # Again, now that no other process can: one may have written the run since the first check.
    run.check_claim(resume=resume, overwrite=overwrite)
    if resume:
        if run.is_complete():
            return run.load_metrics()
        refuse_legacy(run.checkpoint)
        saved = run.load_config()
        saved.train.device = config.train.device
        config = saved
    built = build_run(config, dataset)
    config = built.config
    tracker = open_tracker(config.train, run, resume=resume, is_main=built.world.is_main)
    trainer = Trainer(built, run, tracker, day_end)
    if built.world.is_main:
        run.claim(resume=resume, overwrite=overwrite)
        run.save_config(config)
        run.save_schema(built.dataset.schema)
        handler = run.attach_log()
        plan = built.plan.describe()
        log.info("%s", plan)
        if announce is not None:
            announce(plan)
        if built.coverage is not None:
            log.info("training rows with mask 1 per action:\n%s",
                     format_coverage(built.coverage))
    barrier(built.world)
    try:
        tracker.start(run, config)
        if resume and run.checkpoint.is_file():
            trainer.restore()
        trainer.fit(progress)
        predictions = score_days(built.model, built.eval_days, built.task, built.dataset.schema,
                              batch_size=config.train.batch_size, device=built.device,
                              world=built.world)
        metrics = None
        if predictions is not None:
            metrics = run_metrics(built, trainer, predictions)
            predictions.save(run.writable(run.predictions_file))
            # metrics.json marks the run complete, so everything else is written before it.
            _plot_calibration(run, predictions, metrics.views)
            run.save_metrics(metrics)
            _log_evaluation(run, metrics.views, trainer.state.global_step)
            tracker.log_metrics(evaluation_metrics(metrics.views), trainer.state.global_step)
            log.info("evaluation: %s", metrics.views)
            users = metrics.main_metrics.gauc_users
            if config.data.eval_split == "validation" and users < MIN_VALIDATION_USERS:
                log.warning("the validation GAUC counts only %d users (fewer than %d): choices "
                            "made on it are mostly noise; hold out more days "
                            "(--validation-days) or use more data", users,
                            MIN_VALIDATION_USERS)
        barrier(built.world)
        tracker.log_artifacts(run.path)
        tracker.close("FINISHED")
        return metrics
    except BaseException as error:
        tracker.close(ending_status(error))
        raise
    finally:
        if built.world.is_main:
            logging.getLogger("malt").removeHandler(handler)
            handler.close()


def run_metrics(built: BuiltRun, trainer: Trainer, predictions: Predictions) -> RunMetrics:
    """The record of a trained run evaluated on `predictions`."""
    return RunMetrics(
        main=built.task.main, views=evaluate(predictions),
        eval_days=tuple(d.name for d in built.eval_days), eval_rows=int(len(predictions.user)),
        train=TrainStats(days=len(built.train_days), rows=sum(d.rows for d in built.train_days),
                         steps=trainer.state.global_step,
                         seconds=round(trainer.state.seconds, 2), world_size=built.world.size,
                         data_wait_seconds=round(trainer.state.data_wait_seconds, 3)),
        params=ParamCounts(*built.model.parameter_counts()),
        target=None if predictions.target_action is None else target_metrics(predictions),
        coverage=built.coverage, per_day=evaluate_by_day(predictions))


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
