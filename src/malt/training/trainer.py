"""One pass over the training days in time order, then evaluation on the held-out day.

The trainer knows loss terms, never column names: it reads batches from `malt.data.batches`,
asks the model for its loss terms (`malt.losses.terms`) and combines them as
`Σ_main w · L + λ · Σ_aux w · L` (or weighs the tasks by a loss weighting, or hands their
gradients to a gradient method: `train.grad_method`). Checkpoints are written
at every day boundary and when the run is interrupted (Ctrl-C finishes the current step, saves,
and stops); `resume` continues from the checkpoint and ends with the same numbers as an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from malt.data.ahead import read_ahead
from malt.data.batches import Batch, DayBatches
from malt.data.cache import Day
from malt.errors import ConfigError, Interrupted
from malt.precision import as_float32, autocast
from malt.reproducible import VARIABLE, mkl_reproducible
from malt.runs.checkpoint import (
    Checkpoint,
    TrainState,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from malt.runs.config import LOSS_WEIGHTING_METHODS
from malt.runs.directory import RunDir
from malt.runs.tracking import Tracker
from malt.training import aggregation, grad_methods
from malt.training.builder import BuiltRun
from malt.training.distributed import World, all_reduce_mean, barrier
from malt.training.optim import clip_gradients
from malt.training.progress import ProgressFn, TrainProgress
from malt.training.task_weighting import (
    DynamicWeightAverage,
    SmoothedSimilarity,
    UncertaintyWeighting,
)
from malt.training.weights_table import TaskWeightsTable

log = logging.getLogger(__name__)


@dataclass
class StepReport:
    losses: dict[str, float]
    """Every loss term's w · value, when the step is due for logging (else empty)."""
    rows: int
    main_loss: float | None = None
    """The main task's loss, when the step is due for logging."""
    task_weights: dict[str, float] = field(default_factory=dict)
    """Task name -> its weight in the update, of a weighting grad method, when due."""


@dataclass
class _Leg:
    """One uninterrupted stretch of training: where it started and what it has done."""

    first_step: int
    seconds_before: float
    """Training seconds of the earlier legs."""
    started: float = field(default_factory=time.perf_counter)
    rows: int = 0
    """Rows trained in this leg, all ranks."""
    loss: float | None = None
    data_wait_before: float = 0.0
    """Seconds the earlier legs waited for batches."""
    data_wait: float = 0.0
    """Seconds this leg waited for its next batch (what the read-ahead did not hide)."""

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def samples_per_s(self) -> float:
        return self.rows / max(self.elapsed(), 1e-9)


_STOP_EVERY_TRAINER = threading.Event()


def stop_every_trainer() -> None:
    """Ask every trainer of this process, now and later, to save and stop before its next
    step, as Ctrl-C does: for a process the Ctrl-C did not reach (a study's worker when only
    its driver was interrupted)."""
    _STOP_EVERY_TRAINER.set()


class Trainer:
    """Trains the objects of a built run (`malt.training.builder.build_run`) day by day, writing
    checkpoints into `run` and the logged steps' scalars to TensorBoard and `tracker`, and
    calling `day_end` after each day's checkpoint; see the module docstring."""

    def __init__(self, built: BuiltRun, run: RunDir, tracker: Tracker | None = None,
                 day_end: Callable[[], None] | None = None):
        self.built, self.run = built, run
        self.tracker = tracker or Tracker()
        self.day_end = day_end
        self.config, self.task, self.world = built.config, built.task, built.world
        self.model, self.net, self.device = built.model, built.net, built.device
        self.optimisation, self.masks = built.optimisation, built.masks
        self.train_days, self.total_steps = built.train_days, built.plan.steps
        self.generator = torch.Generator().manual_seed(built.config.seed)
        cfg = built.config.train
        self.loss_weighting = _loss_weighting(cfg.grad_method, cfg.dwa_temperature,
                                              cfg.dwa_period, self.task.aux_weight, self.world)
        self.similarity = SmoothedSimilarity(cfg.gcs_ema_decay) \
            if cfg.grad_method == "gcs-ema" else None
        self.aggregator = aggregation.weighting_of(cfg.grad_method, cfg.cagrad_c) \
            if cfg.grad_method in aggregation.AGGREGATORS else None
        self._weighting_holder = self.loss_weighting or self.similarity
        """What keeps a weighting state across steps (saved with the optimiser's), if any."""
        self._task_weights: list[float] = []
        """The weight of each task in the last step's update (main first); empty without one."""
        self.weights_table: TaskWeightsTable | None = None
        self.state = TrainState()
        self._stop_requested = False
        self._leg: _Leg | None = None

    # --- persistence -----------------------------------------------------------------------
    def save(self) -> None:
        if self._leg is not None:
            self.state.seconds = self._leg.seconds_before + self._leg.elapsed()
            self.state.data_wait_seconds = self._leg.data_wait_before + self._leg.data_wait
        if self.world.is_main:
            save_checkpoint(self.run.writable(self.run.checkpoint), model=self.model,
                            optimisation_state=self._optimisation_state(), state=self.state,
                            generator=self.generator, config=self.config.to_dict())
        barrier(self.world)

    def _optimisation_state(self) -> dict:
        """The optimisers' state and, with a learned or adapted task weighting, its state."""
        state = self.optimisation.state_dict()
        weighting = self._weighting_holder.state_dict() if self._weighting_holder else {}
        if weighting:
            state["task_weighting"] = weighting
        return state

    def restore(self) -> None:
        """Continue from the run's checkpoint; one that does not fit this run (another model,
        other tables, a damaged state) raises a `ConfigError`."""
        checkpoint = load_checkpoint(self.run.checkpoint, map_location=self.device)
        self._load(checkpoint, optimiser=True, source=self.run.path)
        self.state = checkpoint.state
        log.info("resumed at day %d step %d (global step %d)", self.state.day,
                 self.state.step_in_day, self.state.global_step)

    def start_from(self, parent: Checkpoint, *, optimiser: bool, source: Path) -> None:
        """Warm start from the finished run `source`: its weights (`parent`, fitted to this
        run's tables by `malt.training.warm_start`) and, with `optimiser`, its optimiser state,
        schedule position and random states, so the pass continues the parent's. This run's
        own position starts at its first day."""
        self._load(parent, optimiser=optimiser, source=source)
        log.info("warm-started from %s (%s optimiser state)", source,
                 "its" if optimiser else "a fresh")

    def _load(self, checkpoint: Checkpoint, *, optimiser: bool, source: Path) -> None:
        try:
            self.model.load_state_dict(checkpoint.model)
            if optimiser:
                self.optimisation.load_state_dict(checkpoint.optimisation)
                if self._weighting_holder is not None:
                    self._weighting_holder.load_state_dict(
                        checkpoint.optimisation.get("task_weighting", {}))
                set_rng_state(checkpoint.rng)
                self.generator.set_state(checkpoint.generator)
        except (RuntimeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ConfigError(f"the checkpoint of {source} does not fit this run: "
                              f"{str(exc).splitlines()[0]}") from None

    # --- training --------------------------------------------------------------------------
    def fit(self, progress: ProgressFn | None = None) -> None:
        """Train through the remaining days; raises `Interrupted` after saving on Ctrl-C.

        `progress` (rank 0 only) is called after every step. Training time accumulates over
        the legs of a resumed run in `state.seconds` (saved with every checkpoint).
        """
        cfg = self.config.train
        writer = self._tensorboard()
        if writer is not None and self._weighs_tasks():
            self.weights_table = TaskWeightsTable.resumed(self.run.task_weights_file,
                                                          self.state.global_step)
        if not self.world.is_main:
            progress = None
        elif mkl_reproducible() is False:
            log.warning("MKL computed before malt was imported, so the same seed may give other "
                        "last bits on this CPU: import malt before torch computes, or set "
                        "%s=AUTO,STRICT", VARIABLE)
        self._leg = _Leg(self.state.global_step, self.state.seconds,
                         data_wait_before=self.state.data_wait_seconds)
        previous = signal.signal(signal.SIGINT, self._request_stop) \
            if _in_main_thread() else None
        try:
            while self.state.day < len(self.train_days):
                day = self.train_days[self.state.day]
                batches = DayBatches(day, cfg.batch_size, shuffle=cfg.shuffle,
                                     seed=self.config.seed,
                                     day_index=self.built.first_day + self.state.day,
                                     rank=self.world.rank, world_size=self.world.size,
                                     device=self.device, as_of=self.config.data.as_of_seconds)
                for batch in self._waited(read_ahead(batches.from_step(self.state.step_in_day),
                                                     name="malt-batches")):
                    if self._should_stop():
                        self.save()
                        raise Interrupted(f"stopped at day {self.state.day} step "
                                          f"{self.state.step_in_day}")
                    if int(batch["step_rows"]) < self.world.size:
                        # A day's last step with fewer rows than ranks would leave some rank
                        # without data; every rank skips it alike.
                        self._advance()
                        continue
                    report = self.train_step(batch)
                    self._advance()
                    self._leg.rows += report.rows * self.world.size
                    if report.losses:
                        self._refuse_divergence(report.losses)
                        self._leg.loss = report.main_loss
                        self._log_step(writer, report)
                    if progress is not None:
                        progress(self._progress(day))
                # Day-end checkpoints (what evaluation and export read) hold up-to-date tables;
                # one written mid-day holds the deferred updates and resumes them exactly.
                self.optimisation.catch_up()
                self._refuse_non_finite_parameters()
                self.state.day += 1
                self.state.step_in_day = 0
                self.save()
                if self.day_end is not None:
                    self.day_end()
                log.info("finished day %s (%d of %d)", day.name, self.state.day,
                         len(self.train_days))
            if self._should_stop():  # Ctrl-C in the pass's last step: the day-end save holds it
                raise Interrupted("stopped after the last training step, before the evaluation")
            self.state.finished = True
            self.save()
        finally:
            if writer is not None:
                writer.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _refuse_divergence(self, losses: dict[str, float]) -> None:
        """Stop, on every rank alike, when a logged loss is not finite: the parameters have
        overflowed, and every later step and the evaluation would only carry NaN along."""
        bad = {view: value for view, value in losses.items() if not math.isfinite(value)}
        flag = float(bool(bad))
        if self.world.distributed:
            shared = torch.tensor([flag], device=self.device)
            torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
            flag = float(shared.item())
        if flag:
            where = ", ".join(f"{view} {value}" for view, value in bad.items()) or \
                "on another process"
            self._diverged(f"loss {where}")

    def _refuse_non_finite_parameters(self) -> None:
        """Stop before a day-end checkpoint that would hold NaN or infinite parameters (the
        last steps of a day are not always logged). Every rank holds the same parameters, so
        every rank decides alike."""
        bad = [name for name, p in self.model.named_parameters()
               if not bool(torch.isfinite(p.detach()).all())]
        if bad:
            self._diverged(f"parameters {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} "
                           "are not finite")

    def _diverged(self, what: str) -> None:
        raise ConfigError(
            f"training diverged at step {self.state.global_step} (day {self.state.day + 1} "
            f"of {len(self.train_days)}): {what}. Lower the learning rate (--lr) or clip the "
            f"gradients (--grad-clip); the run in {self.run.path} is left unfinished "
            "(--overwrite starts it again)")

    def _waited(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        """`batches`, adding the time spent waiting for each to the leg's data wait."""
        while True:
            started = time.perf_counter()
            batch = next(batches, None)
            self._leg.data_wait += time.perf_counter() - started
            if batch is None:
                return
            yield batch

    def _advance(self) -> None:
        self.state.step_in_day += 1
        self.state.global_step += 1

    def train_step(self, batch: Batch) -> StepReport:
        """One optimiser step on one batch; returns the losses when they are due for logging."""
        cfg = self.config.train
        self.model.train()
        batch = self.masks.apply(batch, self.state.day)
        rows = int(batch["labels"].shape[0])
        # Each rank averages over its own rows; rescale so that the mean over ranks (what DDP
        # computes) is the mean over the whole step even when the parts differ by one row.
        scale = rows * self.world.size / int(batch["step_rows"])
        with_aux = self.task.aux_weight > 0
        use_surgery = cfg.grad_method not in LOSS_WEIGHTING_METHODS and with_aux
        sync = self.net.no_sync() if use_surgery and self.world.distributed \
            else contextlib.nullcontext()
        with sync:
            with autocast(cfg.precision, self.device):
                outputs = self.net(batch)
            terms = self.model.loss_terms(as_float32(outputs), batch)
        if use_surgery and terms.auxiliary:
            self._surgery_step(terms.tasks(), scale)
        elif self.loss_weighting is not None and with_aux and terms.auxiliary:
            # Scaled before the weighting sees them: DWA's period means, averaged over the
            # ranks, are then the whole steps' means even on a step split unevenly.
            self.loss_weighting.loss([task * scale for task in terms.tasks()]).backward()
            self._task_weights = self.loss_weighting.weights()
        else:
            (terms.total(self.task.aux_weight) * scale).backward()
            if use_surgery:
                # DDP skipped its all-reduce (no_sync) for a surgery this step turned out not
                # to need: no auxiliary term. Average over the ranks here instead.
                all_reduce_mean([p.grad for p in self.model.parameters() if p.grad is not None],
                                self.world)
        if cfg.grad_clip is not None:
            clip_gradients(list(self.model.parameters()), cfg.grad_clip)
        lr = self.optimisation.lr
        self.optimisation.step()
        self.optimisation.zero_grad()
        if self.loss_weighting is not None:
            self.loss_weighting.step(lr)
        step = self.state.global_step
        due = step == 0 or step + 1 == self.total_steps or (step + 1) % cfg.log_every == 0
        if not due:
            return StepReport(losses={}, rows=rows)
        names = [self.task.main, *(t.name for t in terms.auxiliary)]
        return StepReport(losses=terms.logged(), rows=rows,
                          main_loss=float(terms.main_loss().detach()),
                          task_weights=dict(zip(names, self._task_weights)))

    def _surgery_step(self, tasks: list[torch.Tensor], scale: float) -> None:
        """Step on the combined gradient of `tasks` (the main task's loss first, then each
        auxiliary task's), each scaled to this rank's share of the step."""
        cfg = self.config.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        grads = grad_methods.task_gradients([task * scale for task in tasks], params,
                                            self.world)
        aux_weight = self.task.aux_weight
        if cfg.grad_method == "gcs":
            combined, alphas = grad_methods.gcs(grads, params, cfg.grad_variant,
                                                cfg.gcs_weighting, aux_weight)
            scaled = cfg.gcs_weighting != "sigmoid"
            self._task_weights = [1.0, *(aux_weight * a if scaled else a for a in alphas)]
        elif cfg.grad_method == "gcs-ema":
            weights = self.similarity.update(grad_methods.cosines(grads, params))
            combined = grad_methods.weighted_on_shared(grads, params, weights, aux_weight)
            self._task_weights = [1.0, *(aux_weight * w for w in weights)]
        elif self.aggregator is not None:
            combined, self._task_weights = aggregation.aggregate(grads, params, self.aggregator,
                                                                 aux_weight)
        else:
            combined, _ = grad_methods.pcgrad(grads, params, cfg.grad_variant, self.generator)
        for p, g in zip(params, combined):
            p.grad = g

    def _weighs_tasks(self) -> bool:
        """Whether the steps give the tasks weights worth a table (not the plain sum, not
        PCGrad, not without auxiliary tasks)."""
        return self.config.train.grad_method not in ("none", "pcgrad") and \
            self.task.aux_weight > 0 and bool(self.task.aux)

    # --- interruption ----------------------------------------------------------------------
    def _request_stop(self, signum, frame) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        log.warning("interrupt received: finishing this step and saving a checkpoint "
                    "(press Ctrl-C again to abort without saving)")

    def request_stop(self) -> None:
        """Ask the loop to save and stop before the next step (what Ctrl-C does)."""
        self._stop_requested = True

    def _should_stop(self) -> bool:
        asked = self._stop_requested or _STOP_EVERY_TRAINER.is_set()
        if not self.world.distributed:
            return asked
        flag = torch.tensor([float(asked)], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    # --- logging ---------------------------------------------------------------------------
    def _tensorboard(self):
        if not self.world.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        self.run.writable(self.run.tensorboard_events)
        return SummaryWriter(str(self.run.tensorboard_dir), purge_step=self.state.global_step)

    def _log_step(self, writer, report: StepReport) -> None:
        """Scalars of a logged step (the first, the last and every `log_every`), to TensorBoard
        and the tracker."""
        if writer is None:
            return
        step = self.state.global_step
        scalars = {f"loss/{view}": value for view, value in report.losses.items()}
        scalars["lr"] = self.optimisation.lr
        scalars["samples_per_s"] = self._leg.samples_per_s()
        scalars["data_wait_share"] = self._leg.data_wait / max(self._leg.elapsed(), 1e-9)
        scalars.update({f"task_weight/{name}": w for name, w in report.task_weights.items()})
        if self.weights_table is not None and report.task_weights:
            self.weights_table.add(step, report.task_weights)
            self.run.writable(self.run.task_weights_file)
            self.weights_table.write()
        for name, value in scalars.items():
            writer.add_scalar(name, value, step)
        self.tracker.log_metrics(scalars, step)

    def _progress(self, day: Day) -> TrainProgress:
        leg = self._leg
        steps = self.state.global_step - leg.first_step
        elapsed = leg.elapsed()
        eta = elapsed / steps * (self.total_steps - self.state.global_step) if steps else None
        return TrainProgress(day=day.name, day_index=self.state.day, days=len(self.train_days),
                             step=self.state.global_step, total_steps=self.total_steps,
                             samples_per_s=leg.samples_per_s(), loss=leg.loss, eta_s=eta)


def _loss_weighting(method: str, temperature: float, period: int, aux_weight: float,
                    world: World) -> UncertaintyWeighting | DynamicWeightAverage | None:
    if method == "uncertainty":
        return UncertaintyWeighting(aux_weight, world)
    if method == "dwa":
        return DynamicWeightAverage(aux_weight, temperature, period, world)
    return None


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
