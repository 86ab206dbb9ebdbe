"""Run many cells: completed ones are read back, the others trained in parallel processes.

On CPU, `jobs` worker processes each get `cores // jobs` torch threads (small models train
faster side by side than on shared threads). When CUDA devices are visible and the device is not
`cpu`, there is one worker per GPU (or `jobs`, spread round-robin over the GPUs), each seeing
only its own device. Workers are spawned, never forked, so no CUDA or thread-pool state leaks
into them, and each keeps its prepared data sets between cells. With one worker (or one cell
left) the cells run in this process.

A failed cell is reported as an `Outcome` with its error (the traceback is in the run's
`error.txt`) while the other cells go on. Ctrl-C reaches every worker: training stops after the
current step with a checkpoint saved, and the next call resumes every unfinished cell.

Where the unfinished cells train is a `Backend`: `LocalBackend` (the processes above) or
`malt.experiments.ray_backend.RayBackend` (Ray tasks); reading completed cells back, the
outcomes and the reports are the same for both.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from malt.allocator import retain_freed_memory
from malt.data.cache import Dataset
from malt.experiments.cells import Cell, TrainFn, execute
from malt.host import usable_cores
from malt.runs.config import RunConfig
from malt.runs.record import RunMetrics


@dataclass
class Outcome:
    """What became of one cell: `done` (trained now), `skipped` (already complete) or
    `failed` (`error` holds the exception's last line)."""

    cell: Cell
    status: str
    metrics: RunMetrics | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.metrics is not None

    def progress_line(self, finished: int, total: int, root: Path,
                      score: Callable[[dict[str, Any]], str]) -> str | None:
        """What a study prints when this cell ends (None for a cell read back): its time and
        `score(metrics)`, or the error and where its traceback is."""
        if self.status == "skipped":
            return None
        where = f"[{finished}/{total}] {self.cell.id}"
        if self.ok:
            return f"  {where}  {self.seconds:.0f} s  {score(self.metrics)}"
        return (f"  {where}  FAILED: {self.error} "
                f"(see {self.cell.run_dir(root).error_file})")


@dataclass(frozen=True)
class Workers:
    """How cells are spread: `count` processes with `threads` torch threads each; `gpus` are
    the CUDA device ids handed out round-robin (empty on CPU)."""

    count: int
    threads: int
    gpus: tuple[str, ...] = ()


def visible_gpus(device: str) -> tuple[str, ...]:
    """CUDA device ids usable for `device` (`auto`, `cuda`, `cpu`), as CUDA_VISIBLE_DEVICES
    entries."""
    if device == "cpu":
        return ()
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in listed.split(",") if s.strip()] if listed else []
    return tuple(ids[:count]) if ids else tuple(str(i) for i in range(count))


def plan_workers(jobs: int | None, gpus: Sequence[str], cores: int,
                 cpu_jobs: int | None = 1, cells: int | None = None) -> Workers:
    """One worker per GPU (or `jobs` of them), else `jobs` CPU workers (default `cpu_jobs`;
    None = one per core); never more workers than `cells` to run."""
    if jobs is not None and jobs < 1:
        from malt.errors import ConfigError

        raise ConfigError(f"--jobs must be positive, got {jobs}")
    count = (jobs or len(gpus)) if gpus else (jobs or cpu_jobs or cores)
    if cells is not None:
        count = max(1, min(count, cells))
    return Workers(count=count, threads=max(1, cores // count), gpus=tuple(gpus))


# --- inside a worker ----------------------------------------------------------------------------
_DATASETS: dict[tuple[str | None, str | None, str | None], Dataset] = {}
_STOP: Any = None
"""The pool's stop event in a worker: set once the run is interrupted, so that cells already
handed to the worker's queue are not started."""
EXIT_ORPHANED = 130
"""A worker's exit status once it has stopped because its driver died."""
_ORPHANED = threading.Event()
"""Set in a worker once its driver is gone: no cell starts then."""


def _dataset(config: RunConfig) -> Dataset:
    """The prepared data set of `config`, prepared once per process."""
    key = (config.data.path, config.data.schema, config.data.cache)
    if key not in _DATASETS:
        from malt.training.builder import open_dataset

        _DATASETS[key] = open_dataset(config.data)
    return _DATASETS[key]


def failure_line(exc: BaseException) -> str:
    """The first line of `exc` as an `Outcome.error`."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def run_one(cell: Cell, root: Path, train: TrainFn | None) -> tuple[str, Any, float]:
    """("done", metrics) / ("failed", error line) / ("interrupted", message), and seconds."""
    from malt.errors import Interrupted

    # The worker's own flag first: once the driver is gone, the pool's event may never answer.
    if _ORPHANED.is_set() or (_STOP is not None and _STOP.is_set()):
        return "interrupted", "stopped before it started", 0.0
    started = time.perf_counter()
    try:
        dataset = _dataset(cell.config) if train is None else None
        metrics = execute(cell, root, train=train, dataset=dataset)
        return "done", metrics, time.perf_counter() - started
    except Interrupted as stop:
        return "interrupted", str(stop), time.perf_counter() - started
    except Exception as exc:  # every failure is reported, none stops the other cells
        return "failed", failure_line(exc), time.perf_counter() - started


def _run_in_worker(cell: Cell, root: Path, train: TrainFn | None) -> tuple[str, Any, float]:
    """`run_one` in a pool worker, which Ctrl-C interrupts while it runs a cell: the trainer's
    handler saves a checkpoint and stops; before or after training (building the run,
    evaluating it) the cell stops at once, its last checkpoint kept."""
    started = time.perf_counter()
    _IDLE.clear()  # before `run_one` looks at the stop flags (see `_stop_when_orphaned`)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run_one(cell, root, train)
    except KeyboardInterrupt:
        return "interrupted", "interrupted outside its training steps", \
            time.perf_counter() - started
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _IDLE.set()


def _init_worker(driver: int, threads: int, gpu_queue: Any, stop: Any) -> None:
    # Idle workers ignore Ctrl-C (a KeyboardInterrupt would break the pool); a worker running
    # a cell takes it (`_run_in_worker`).
    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The driver's pid comes from the driver: a worker still starting when the driver is
    # killed would read its new parent from `os.getppid()` and never see itself orphaned.
    threading.Thread(target=_stop_when_orphaned, args=(driver,), daemon=True,
                     name="malt-orphan-watch").start()
    threading.Thread(target=_stop_training_with_the_pool, args=(stop,), daemon=True,
                     name="malt-stop-watch").start()
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()
    import torch

    retain_freed_memory()
    torch.set_num_threads(threads)


_IDLE = threading.Event()
"""Set while this worker runs no cell."""
_IDLE.set()


def _stop_training_with_the_pool(stop: Any) -> None:
    """Stop a running cell's training (it saves a checkpoint) once the pool stops: a Ctrl-C
    sent to the driver alone (`kill -INT`) reaches no worker."""
    stop.wait()
    from malt.training.trainer import stop_every_trainer

    stop_every_trainer()


def _stop_when_orphaned(driver: int, poll_seconds: float = 1.0) -> None:
    """End this worker once its driver is gone (killed with no chance to stop its pool): a
    running cell is stopped as by Ctrl-C (it saves a checkpoint), no other cell starts, and
    the process exits, where it would otherwise train on and then wait for work forever.

    The pool's stop event is not touched here: its lock is shared by every process of the
    pool, and one that died holding it (the driver, killed in `is_set`; another orphaned
    worker, ended while a thread of its own held it) leaves it taken for good."""
    while os.getppid() == driver:
        time.sleep(poll_seconds)
    _ORPHANED.set()
    if not _IDLE.is_set():
        os.kill(os.getpid(), signal.SIGINT)
    _IDLE.wait()
    os._exit(EXIT_ORPHANED)


# --- the driver ---------------------------------------------------------------------------------
Report = Callable[[Outcome, int, int], None]
"""Called after each cell with (outcome, cells finished so far, cells in all)."""
Record = Callable[[Cell, tuple[str, Any, float]], None]
"""Takes a cell's `run_one` result; raises `KeyboardInterrupt` for an interrupted cell."""


class Backend(Protocol):
    """Where the cells that are not complete yet are trained."""

    def plan(self, jobs: int | None, cpu_jobs: int | None, device: str, cells: int) -> Workers:
        """How `cells` cells are spread (see `plan_workers`)."""
        ...

    def run(self, cells: list[Cell], root: Path, train: TrainFn | None, workers: Workers,
            record: Record) -> None:
        """Train `cells`, passing each result to `record` as it comes; on an interruption (or
        an exception from `record`) stop the running cells with their checkpoints saved, then
        raise."""
        ...


class LocalBackend:
    """This machine's cores or GPUs: a pool of spawned processes, or this process for one."""

    def plan(self, jobs: int | None, cpu_jobs: int | None, device: str, cells: int) -> Workers:
        return plan_workers(jobs, visible_gpus(device), usable_cores(), cpu_jobs, cells)

    def run(self, cells: list[Cell], root: Path, train: TrainFn | None, workers: Workers,
            record: Record) -> None:
        if workers.count == 1:  # in this process (on one GPU: the first visible, as a worker's)
            for cell in cells:
                record(cell, run_one(cell, root, train))
        else:
            _run_pool(cells, root, train, workers, record)


def run_cells(cells: Sequence[Cell], root: Path, *, jobs: int | None = None,
              cpu_jobs: int | None = 1, device: str = "auto", train: TrainFn | None = None,
              report: Report | None = None, backend: Backend | None = None
              ) -> dict[str, Outcome]:
    """Run every distinct cell under `root`; returns cell id -> `Outcome`, in input order.

    `jobs` parallel runs (default: one per GPU, else `cpu_jobs` on CPU, None = one per core),
    on `backend` (default `LocalBackend`).

    `train` replaces `malt.jobs.train.train_run` (tests); it must be a module-level function
    when `jobs` > 1. Raises `KeyboardInterrupt` when the run was interrupted, after every
    worker has saved its checkpoint.
    """
    unique = list({c.id: c for c in cells}.values())
    outcomes: dict[str, Outcome] = {}
    pending: list[Cell] = []
    for cell in unique:
        run = cell.run_dir(root)
        if run.is_complete():
            outcomes[cell.id] = Outcome(cell, "skipped", metrics=run.load_metrics())
        else:
            pending.append(cell)
    total, finished = len(unique), 0
    for outcome in outcomes.values():
        finished += 1
        if report:
            report(outcome, finished, total)
    if not pending:
        return {c.id: outcomes[c.id] for c in unique}

    backend = backend or LocalBackend()
    workers = backend.plan(jobs, cpu_jobs, device, len(pending))

    def record(cell: Cell, result: tuple[str, Any, float]) -> None:
        nonlocal finished
        status, payload, seconds = result
        if status == "interrupted":
            raise KeyboardInterrupt(payload)
        outcome = Outcome(cell, status, seconds=seconds,
                          **({"metrics": payload} if status == "done" else {"error": payload}))
        outcomes[cell.id] = outcome
        finished += 1
        if report:
            report(outcome, finished, total)

    backend.run(pending, root, train, workers, record)
    return {c.id: outcomes[c.id] for c in unique}


def _run_pool(cells: list[Cell], root: Path, train: TrainFn | None, workers: Workers,
              record: Record) -> None:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    gpu_queue = None
    if workers.gpus:
        gpu_queue = context.Queue()
        for i in range(workers.count):
            gpu_queue.put(workers.gpus[i % len(workers.gpus)])
    executor = ProcessPoolExecutor(max_workers=workers.count, mp_context=context,
                                   initializer=_init_worker,
                                   initargs=(os.getpid(), workers.threads, gpu_queue, stop))
    futures: dict[Future, Cell] = {executor.submit(_run_in_worker, c, root, train): c
                                   for c in cells}
    ctrl_c = threading.Event()
    try:
        with _ctrl_c_noted(ctrl_c):
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, timeout=_CTRL_C_POLL_SECONDS,
                                       return_when=FIRST_COMPLETED)
                if ctrl_c.is_set():
                    raise KeyboardInterrupt
                for future in done:
                    try:
                        result = future.result()
                    except Exception as exc:  # a worker died (killed, out of memory)
                        result = ("failed", failure_line(exc), 0.0)
                    record(futures[future], result)
            if ctrl_c.is_set():  # pressed while the last results were recorded
                raise KeyboardInterrupt
    except BaseException:
        # Interrupted (or a report callback failed): let running cells save and stop; queued
        # ones are cancelled, and those already handed to a worker see `stop` and return.
        with _ctrl_c_ignored():
            stop.set()
            executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


_CTRL_C_POLL_SECONDS = 0.25
"""How often the driver's wait looks at whether Ctrl-C was pressed."""


@contextmanager
def _ctrl_c_noted(pressed: threading.Event) -> Iterator[None]:
    """Let Ctrl-C in this (the driver's) process set `pressed` rather than raise.

    A KeyboardInterrupt raised by the default handler lands in whatever Python code runs at
    that moment; in a garbage-collection callback (a weak reference's) Python prints it as
    ignored and carries on, so the study would go on scheduling cells. The wait loop looks at
    `pressed` instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Ignore Ctrl-C in this (the driver's) process while its workers stop.

    A second Ctrl-C (the workers get it too and stop as for the first) must not cut the wait
    short: the driver would exit while the executor still owes its idle workers their
    sentinels, and hang at exit joining them (`multiprocessing` closes the queue first)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread takes signals (and may set their handlers)
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
