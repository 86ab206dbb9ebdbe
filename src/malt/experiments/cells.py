"""A cell: one training run of a study, named by what it trains.

A cell is a `RunConfig`. Its id is a readable prefix plus a hash of the parts of the config that
change the numbers, so the same run asked for by two studies (or by a re-run of one study) lands
in the same directory `<runs>/<id>` and is trained once. Left out of the hash: the device, the
logging interval and the tracker settings (they do not change what is learned), and the data
path and cache (a study's output directory belongs to one data set; the study command checks
that).
"""

from __future__ import annotations

import functools
import hashlib
import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from malt.data.cache import Dataset
from malt.runs.config import RunConfig, TrainConfig
from malt.runs.directory import RunDir
from malt.runs.record import RunMetrics

TrainFn = Callable[..., RunMetrics | None]
"""`train(config, out, *, resume, dataset) -> metrics`, the signature of
`malt.jobs.train.train_run`; tests inject a fake one."""

_NOT_IN_ID = {("train", "device"), ("train", "compile"), ("train", "log_every"),
              ("train", "tracker"), ("train", "tracking_uri"), ("train", "mlflow_experiment"),
              ("data", "path"), ("data", "cache")}


_TRAIN_ADDED = {f.name: f.default for f in fields(TrainConfig)
                if f.name in ("gcs_ema_decay", "dwa_temperature", "dwa_period", "cagrad_c")}
"""Options of the gradient methods added after cells were first named, with their defaults."""


@dataclass(frozen=True, eq=False)
class Cell:
    """One run of a study: its config, and the id and directory derived from it."""

    config: RunConfig

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the config's result-changing content."""
        tree = self.config.to_dict()
        for section, key in _NOT_IN_ID:
            tree[section].pop(key, None)
        # Fields added since cells were first named, left out at their defaults so that the
        # cells of earlier studies keep their ids.
        for key in ("train_from", "as_of"):
            if tree["data"][key] is None:
                del tree["data"][key]
        for key, default in _TRAIN_ADDED.items():
            if tree["train"][key] == default:
                del tree["train"][key]
        if tree["init"]["from_run"] is None:
            del tree["init"]
        if not tree["task"]["entire_space"]:
            del tree["task"]["entire_space"]
        # The precision replaced `amp` (bf16 autocast, then on CUDA only): the cells named
        # before it hashed `amp`, and bf16 is what amp = true trains today.
        tree["train"]["amp"] = tree["train"].pop("precision") == "bf16"
        # None means the default λ: the same run as asking for it.
        tree["task"]["aux_weight"] = self.config.aux_weight()
        text = json.dumps(tree, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def id(self) -> str:
        c = self.config
        split = "-val" if c.data.eval_split == "validation" else ""
        return f"{c.model['name']}-{c.task.main}{split}-s{c.seed}-{self.digest[:12]}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def seeded(self, seed: int) -> Cell:
        """The same cell with another seed."""
        return Cell(replace(self.config, seed=seed))

    def run_dir(self, root: Path) -> RunDir:
        return RunDir(Path(root) / self.id)


def execute(cell: Cell, root: Path, *, train: TrainFn | None = None,
            dataset: Dataset | None = None) -> dict[str, Any]:
    """Run `cell` under `root` and return its metrics: a complete run is read back, an
    interrupted one resumed from its checkpoint, a new one trained.

    A failure leaves its traceback in `<run>/error.txt` (removed once the cell succeeds) and is
    raised again; an interruption (`malt.training.trainer.Interrupted`, the checkpoint is saved)
    is raised as it is.
    """
    run = cell.run_dir(root)
    if run.is_complete():
        return run.load_metrics()
    from malt.errors import Interrupted

    if train is None:
        from malt.allocator import release_freed_memory
        from malt.jobs.train import train_run

        # A no-op unless the process keeps freed memory (the command line, a study worker).
        train = functools.partial(train_run, day_end=release_freed_memory)
    try:
        metrics = train(cell.config, run.path, resume=run.exists(), dataset=dataset)
    except Interrupted:
        raise
    except Exception:
        if not run.output.is_ours():
            run.claim()
        run.writable(run.error_file).write_text(traceback.format_exc())
        raise
    run.error_file.unlink(missing_ok=True)
    if metrics is None:
        raise RuntimeError(f"{run.path}: training returned no metrics")
    return metrics
