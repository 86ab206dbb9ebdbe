"""Study cells as Ray tasks (`malt study --backend ray`), on a local Ray instance or a cluster.

Each cell is one task that declares what it needs: `Workers.threads` CPUs (a node's cores split
by `--jobs`, as on one machine) and, when the run device is CUDA, a GPU (Ray sets
CUDA_VISIBLE_DEVICES; a share of one when `--jobs` asks for more runs than a node has GPUs).
Ray's worker processes run many tasks each and keep their prepared data sets between cells (the
scheduler's per-process cache).

Ctrl-C in the driver cancels the tasks not started yet and interrupts the running ones: Ray
calls the SIGINT handler of the task's process, which in training is the trainer's (finish the
step, save a checkpoint, stop). The driver waits for them, then raises `KeyboardInterrupt`; the
next run resumes every unfinished cell. The workers write the runs, so on several machines the
study's output and data must lie on a file system every node mounts at the same path: the
first batch of cells checks that on every node.

Ray is imported here only, inside the functions (it is the optional extra `malt[ray]`).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from malt.allocator import retain_freed_memory
from malt.errors import ConfigError
from malt.experiments.cells import Cell, TrainFn
from malt.experiments.scheduler import (
    Record,
    Workers,
    failure_line,
    plan_workers,
    run_one,
)
from malt.host import usable_cores

RAY_MISSING = "--backend ray needs Ray: pip install 'malt[ray]'"


class RayBackend:
    """Cells as Ray tasks. `address` None starts a local Ray instance over this machine's cores
    when no Ray session is open yet; `auto` or `ray://host:port` joins a running cluster. A
    session this backend opens is shut down by `close`; one opened before is left open."""

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError(RAY_MISSING) from None
        self.address = address
        self._opened = False
        self._single_machine = False
        self._checked: set[Path] = set()

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Open the Ray session on first use (so that a study's own checks come first)."""
        import ray

        if ray.is_initialized():
            return
        try:
            if self.address is None:
                ray.init(address="local", num_cpus=usable_cores(), include_dashboard=False)
                self._single_machine = True
            else:
                ray.init(address=self.address)
        except ConnectionError as exc:
            raise ConfigError(f"cannot join the Ray cluster at {self.address}: {exc}") from None
        self._opened = True

    def close(self) -> None:
        if self._opened:
            import ray

            ray.shutdown()
            self._opened = False

    # --- the Backend interface ---------------------------------------------------------------
    def plan(self, jobs: int | None, cpu_jobs: int | None, device: str, cells: int) -> Workers:
        """As on one machine, over the cluster's largest node: with GPUs (and a device other
        than `cpu`) one cell per GPU, else the node's cores split by `jobs`."""
        self.connect()
        cpus, gpus = _largest_node(prefer_gpus=device != "cpu")
        if device == "cuda" and not gpus:
            raise ConfigError("--device cuda: the Ray cluster has no GPUs")
        gpu_ids = tuple(str(i) for i in range(gpus)) if device != "cpu" else ()
        return plan_workers(jobs, gpu_ids, cpus, cpu_jobs, cells)

    def run(self, cells: list[Cell], root: Path, train: TrainFn | None, workers: Workers,
            record: Record) -> None:
        import ray

        self.connect()
        root = Path(root).resolve()  # the workers' working directory is not the driver's
        self._check_shared(root, cells)
        gpu_share = min(1.0, len(workers.gpus) / workers.count) if workers.gpus else 0
        # max_calls=0: a worker keeps its data sets (and CUDA context) for the next cell, where
        # Ray would start a fresh process for every GPU task. No retries: a failed cell is
        # reported, and the next run resumes it.
        task = ray.remote(max_calls=0, max_retries=0)(_cell_task).options(
            num_cpus=workers.threads, num_gpus=gpu_share)
        submitted = {task.remote(cell, root, train, workers.threads): cell for cell in cells}
        waiting = list(submitted)
        try:
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    record(submitted[ref], _result(ref))
        except BaseException:
            # Not started: dropped. Running: interrupted, they save a checkpoint and return.
            for ref in waiting:
                ray.cancel(ref)
            if waiting:
                ray.wait(waiting, num_returns=len(waiting))
            raise

    # --- shared file system --------------------------------------------------------------
    def _check_shared(self, root: Path, cells: list[Cell]) -> None:
        """ConfigError unless every node that can run a cell sees `root` (a fresh file written
        there) and the cells' data (the paths that exist here)."""
        if self._single_machine or root in self._checked:
            return
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        data = sorted({c.config.data.path for c in cells if c.config.data.path
                       and Path(c.config.data.path).exists()})
        root.mkdir(parents=True, exist_ok=True)
        token = root / f".shared-check-{uuid.uuid4().hex}"
        token.touch()
        nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= 1]
        probe = ray.remote(_missing_paths)
        try:
            missing = ray.get([probe.options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                    n["NodeID"], soft=False)).remote([str(token), *data]) for n in nodes])
        finally:
            token.unlink(missing_ok=True)

        def named(path: str) -> str:
            return str(root) if path == str(token) else path

        unseen = [f"{n['NodeManagerAddress']} lacks {', '.join(map(named, m))}"
                  for n, m in zip(nodes, missing) if m]
        if unseen:
            raise ConfigError("on a Ray cluster the study's output and data must lie on a file "
                              "system every node mounts at the same path (pass such an --out "
                              f"and --data): {'; '.join(unseen)}")
        self._checked.add(root)


def _largest_node(prefer_gpus: bool) -> tuple[int, int]:
    """(CPUs, GPUs) of the alive node with the most GPUs (when `prefer_gpus`), else CPUs."""
    import ray

    shapes = [(int(n["Resources"].get("CPU", 0)), int(n["Resources"].get("GPU", 0)))
              for n in ray.nodes() if n["Alive"]]
    if not shapes or max(cpus for cpus, _ in shapes) < 1:
        raise ConfigError("the Ray cluster has no node with a CPU to run cells")
    return max(shapes, key=(lambda s: (s[1], s[0])) if prefer_gpus else (lambda s: s[0]))


def _cell_task(cell: Cell, root: Path, train: TrainFn | None, threads: int
               ) -> tuple[str, Any, float]:
    import torch

    retain_freed_memory()
    torch.set_num_threads(threads)
    return run_one(cell, root, train)


def _result(ref: Any) -> tuple[str, Any, float]:
    """A task's `run_one` result; a task that died (worker killed, node lost) failed."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return "failed", failure_line(exc), 0.0


def _missing_paths(paths: list[str]) -> list[str]:
    return [p for p in paths if not Path(p).exists()]
