"""Fake training functions with the signature of `malt.jobs.train.train_run`: they write a run
directory with deterministic metrics computed from the config, so the study machinery can be
tested without training. Module-level so that spawned worker processes can import them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from malt.data.task import CAT
from malt.eval.predictions import Predictions
from malt.metrics import ViewMetrics
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.record import ParamCounts, RunMetrics, TrainStats
from malt.training.weights_table import TaskWeightsTable


def score(config: RunConfig, view: str) -> float:
    """A deterministic GAUC: more auxiliary views help, lr near 1e-2 helps, λ helps a little."""
    t = config.task
    weight = 0.3 if t.aux_weight is None else t.aux_weight
    value = (0.70 + 0.01 * len(t.aux) - 0.01 * abs(math.log10(config.train.lr / 1e-2))
             + 0.002 * weight + 0.0001 * (config.seed % 10)
             + (0.003 if config.train.grad_method == "pcgrad" else 0.0))
    return value - (0.05 if view != t.main else 0.0)


RESUMED = ("resumed",)
"""`eval_days` of a fake run that was asked to resume (the tests read it back)."""


def view(value: float) -> ViewMetrics:
    return ViewMetrics(auc=value + 0.1, gauc=value, gauc_users=10, logloss=0.3,
                       auc_weighted=value + 0.1, gauc_weighted=value, pcoc=1.0, ece=0.01)


def metrics_for(config: RunConfig, resume: bool = False) -> RunMetrics:
    views = [config.task.main, *(v for v in config.task.aux if v != CAT)]
    return RunMetrics(
        main=config.task.main, views={v: view(score(config, v)) for v in views},
        eval_days=RESUMED if resume else ("test",), eval_rows=100,
        train=TrainStats(days=1, rows=100, steps=1, seconds=0.5, world_size=1),
        params=ParamCounts(dense=1000 + 100 * len(config.task.aux), embedding=50))


def predictions_for(config: RunConfig) -> Predictions:
    """Scores of every view on one fixed day of 1,000 rows and 100 users: the higher the run's
    `score`, the less noise on the latent score the labels come from (BASE's score of about
    0.70 gives 2.5 times the noise of MoAE's 0.745)."""
    day = np.random.default_rng(0)
    user = day.integers(0, 100, 1000)
    latent = day.normal(0, 1, 1000)
    labels = (day.random(1000) < 1 / (1 + np.exp(-2 * latent))).astype(np.float32)
    views = (config.task.main, *(v for v in config.task.aux if v != CAT))
    noise = np.random.default_rng([config.seed, round(1e6 * score(config, views[0]))])
    probs = [1 / (1 + np.exp(-(latent + noise.normal(0, np.exp(20 * (0.75 - score(config, v))),
                                                     1000)))) for v in views]
    return Predictions(views=views, labels=views, probs=np.stack(probs, 1).astype(np.float32),
                       weights=np.repeat(labels[:, None], len(views), 1), user=user,
                       days=("test",), day_rows=(1000,))


def fake_train(config: RunConfig, out, *, resume: bool = False, dataset=None) -> RunMetrics:
    run = RunDir(Path(out))
    run.save_config(config)
    metrics = metrics_for(config, resume)
    predictions_for(config).save(run.predictions_file)
    run.save_metrics(metrics)
    return metrics


def crashing_train(config: RunConfig, out, *, resume: bool = False, dataset=None) -> RunMetrics:
    """Starts the run (writes its config) and dies, as a crash mid-training would."""
    RunDir(Path(out)).save_config(config)
    raise RuntimeError("simulated crash\nsecond line")


def interrupted_train(config: RunConfig, out, *, resume: bool = False, dataset=None) -> RunMetrics:
    from malt.errors import Interrupted

    RunDir(Path(out)).save_config(config)
    raise Interrupted("stopped at day 0 step 3")


def picky_train(config: RunConfig, out, *, resume: bool = False, dataset=None) -> RunMetrics:
    """Fails for the learning rate 0.0666, trains every other config."""
    if config.train.lr == 0.0666:
        raise ValueError("this learning rate always fails")
    return fake_train(config, out, resume=resume)


QUICK_LR = 1e-3
"""`stoppable_train` finishes the run of this learning rate once another run waits for Ctrl-C."""
WAITING = "waiting-for-ctrl-c"
SAVED = "checkpoint-saved"


def stoppable_train(config: RunConfig, out, *, resume: bool = False, dataset=None) -> RunMetrics:
    """Like the trainer under Ctrl-C: a run of another lr than `QUICK_LR` installs a SIGINT
    handler, marks itself `WAITING` and waits for SIGINT; then it writes `SAVED` and raises
    `Interrupted`. The `QUICK_LR` run waits until some run is `WAITING`, then finishes."""
    import signal
    import time

    from malt.errors import Interrupted

    out = Path(out)
    deadline = time.monotonic() + 60
    if config.train.lr == QUICK_LR:
        while not list(out.parent.glob(f"*/{WAITING}")):
            if time.monotonic() > deadline:
                raise RuntimeError("no run ever waited for Ctrl-C")
            time.sleep(0.02)
        return fake_train(config, out)
    RunDir(out).save_config(config)
    stopped = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stopped.append(signum))
    try:
        (out / WAITING).touch()
        while not stopped:
            if time.monotonic() > deadline:
                raise RuntimeError("never interrupted")
            time.sleep(0.02)
        (out / SAVED).touch()
        raise Interrupted("stopped at day 0 step 1")
    finally:
        signal.signal(signal.SIGINT, previous)


DRIVER_CTRL_C = "driver-ctrl-c"
"""What `ctrl_c_watching_train` found the driver doing with Ctrl-C while its workers stop."""


def ctrl_c_watching_train(config: RunConfig, out, *, resume: bool = False,
                          dataset=None) -> RunMetrics:
    """The `QUICK_LR` run finishes once another run is `WAITING`; that other run waits until
    the pool is stopping, then writes into `DRIVER_CTRL_C` whether the driver (the parent
    process) ignores Ctrl-C (`ignored`) or would take it (`taken`), and stops (Linux: read
    from /proc)."""
    import os
    import time

    from malt.errors import Interrupted
    from malt.experiments import scheduler

    out = Path(out)
    deadline = time.monotonic() + 60
    if config.train.lr == QUICK_LR:
        while not list(out.parent.glob(f"*/{WAITING}")):
            if time.monotonic() > deadline:
                raise RuntimeError("no run ever waited")
            time.sleep(0.02)
        return fake_train(config, out)
    RunDir(out).save_config(config)
    (out / WAITING).touch()
    while not scheduler._STOP.is_set():
        if time.monotonic() > deadline:
            raise RuntimeError("the pool never stopped")
        time.sleep(0.02)
    status = Path(f"/proc/{os.getppid()}/status").read_text()
    ignored_mask = int(next(line.split()[1] for line in status.splitlines()
                            if line.startswith("SigIgn:")), 16)
    sigint_bit = 1 << (2 - 1)  # SIGINT is signal 2
    (out / DRIVER_CTRL_C).write_text("ignored" if ignored_mask & sigint_bit else "taken")
    raise Interrupted("stopped at day 0 step 1")


def weighing_train(config: RunConfig, out, *, resume: bool = False, dataset=None) -> RunMetrics:
    """`fake_train`, and for a method that weighs the tasks (not the plain sum, not PCGrad) a
    `task_weights.csv` of steps 0, 5 and 10: the main view 1, the i-th auxiliary term
    (i + 1) / 10 · step / 10 (so its mean over the rows is half its last value)."""
    metrics = fake_train(config, out, resume=resume)
    if config.train.grad_method not in ("none", "pcgrad"):
        table = TaskWeightsTable(RunDir(Path(out)).task_weights_file)
        aux = config.task.aux
        for step in (0, 5, 10):
            table.add(step, {config.task.main: 1.0,
                             **{v: (i + 1) / 10 * step / 10 for i, v in enumerate(aux)}})
        table.write()
    return metrics
