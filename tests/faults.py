"""Run a malt command that SIGKILLs itself at a chosen point (fault-injection tests).

    python tests/faults.py POINT N -- malt arguments...

The process kills itself with SIGKILL (no clean-up, no `finally`) the N-th time it reaches
POINT:
- `step`: after an optimiser step (mid-day when N is not a day's last step);
- `day-end`: after the checkpoint written at the end of a training day;
- `checkpoint-write`: half-way through writing a checkpoint;
- `parquet-write`: half-way through writing a parquet file (simulate, attribute);
- `cache-write`: after writing a chunk of a day into the cache (prepare).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


class _Countdown:
    def __init__(self, n: int):
        self.left = n

    def reached(self) -> bool:
        self.left -= 1
        return self.left == 0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _write_half(write, path) -> None:
    """Write a file completely into memory, put half of it at `path`, and die."""
    import io

    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    Path(path).write_bytes(data[:len(data) // 2])
    _die()


def install(point: str, n: int) -> None:
    countdown = _Countdown(n)
    if point == "step":
        from malt.training.trainer import Trainer

        original_step = Trainer.train_step

        def step(self, batch):
            report = original_step(self, batch)
            if countdown.reached():
                _die()
            return report

        Trainer.train_step = step
    elif point == "day-end":
        from malt.training.trainer import Trainer

        original_save = Trainer.save

        def save(self):
            original_save(self)
            if self.state.step_in_day == 0 and countdown.reached():
                _die()

        Trainer.save = save
    elif point == "checkpoint-write":
        from malt.training import checkpoint

        original_write_tree = checkpoint.write_tree

        def write_tree(path, tree, **kwargs):
            original_write_tree(path, tree, **kwargs)
            if countdown.reached():
                data = Path(path).read_bytes()
                Path(path).write_bytes(data[:len(data) // 2])
                _die()

        checkpoint.write_tree = write_tree
    elif point == "parquet-write":
        import pyarrow.parquet as pq

        original_write = pq.write_table

        def write_table(table, where, *args, **kwargs):
            if countdown.reached():
                _write_half(lambda b: original_write(table, b, *args, **kwargs), where)
            return original_write(table, where, *args, **kwargs)

        pq.write_table = write_table
    elif point == "cache-write":
        from malt.data import cache

        original_job_write = cache._Job.write

        def job_write(self, out, first_row):
            original_job_write(self, out, first_row)
            if countdown.reached():
                _die()

        cache._Job.write = job_write
    else:
        raise SystemExit(f"unknown fault point {point!r}")


if __name__ == "__main__":
    point, count, separator, *arguments = sys.argv[1:]
    assert separator == "--", "usage: faults.py POINT N -- malt arguments"
    install(point, int(count))
    from malt.cli import main

    sys.exit(main(arguments))
