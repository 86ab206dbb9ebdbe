"""Run a malt command that kills or interrupts itself at a chosen point (fault-injection tests).

    python tests/support/faults.py POINT N [ACTION] -- malt arguments...

The N-th time the process reaches POINT it does ACTION:
- `kill` (the default): SIGKILL itself (no clean-up, no `finally`); a write point leaves half
  of the file written;
- `interrupt`: send SIGINT (what Ctrl-C sends) to its process group, as a terminal's Ctrl-C
  reaches the command and a study's workers, and carry on: the signal arrives while the work
  at POINT goes on. The command must lead its process group (`start_new_session=True`).
- `terminate`: send SIGTERM (what `kill` and job schedulers send) to the command's own process,
  the leader of its process group, not to a study's workers, and carry on; sent once per
  process group, however many workers reach the point;
- `interrupt-leader`: send SIGINT to the command's own process alone (as `kill -INT PID`
  does), not to a study's workers, wait 2 s (for the driver to pass the stop on) and carry
  on; sent once per process group;
- `hangup`: send SIGHUP (a reload, for `malt serve`) to the command's own process, and carry
  on;
- `kill-leader`: from a study's worker, SIGKILL the command's own process (the driver), wait
  until this worker is orphaned, then 3 s more (for it to notice) before it carries on; once
  per process group.

A study's workers (spawned processes, which import this file as `__mp_main__`) install the
same fault, each counting its own N.

Points:
- `step`: after an optimiser step (mid-day when N is not a day's last step);
- `day-end`: after the checkpoint written at the end of a training day;
- `checkpoint-write`: half-way through writing a checkpoint;
- `parquet-write`: half-way through writing a parquet file (simulate, attribute);
- `cache-write`: after writing a chunk of a day into the cache (prepare);
- `convert`: after converting a chunk of a day file (prepare's workers, predict's converter
  thread, eval on other data);
- `write`: at the start of a file written atomically (`malt.outputs.atomic_write`: every
  command's output files);
- `evaluate`: when a trained run starts its evaluation (train, demo, study);
- `serve-load`: once `malt serve` has loaded a model, before the service is up.
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


def _interrupt() -> None:
    os.killpg(os.getpgrp(), signal.SIGINT)


def _once_per_group() -> bool:
    """True for the first process of the command to ask (a file claimed exclusively)."""
    try:
        os.close(os.open(os.environ[_CLAIM], os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def _terminate() -> None:
    if _once_per_group():
        os.kill(os.getpgrp(), signal.SIGTERM)


def _interrupt_leader() -> None:
    import time

    if _once_per_group():
        os.kill(os.getpgrp(), signal.SIGINT)
        time.sleep(2.0)


def _hang_up() -> None:
    os.kill(os.getpgrp(), signal.SIGHUP)


def _kill_leader() -> None:
    import time

    # Once: a second worker reaching the point after the driver died would read its new
    # parent as the driver and wait for it to change forever.
    if not _once_per_group():
        return
    driver = os.getppid()
    os.kill(os.getpgrp(), signal.SIGKILL)
    while os.getppid() == driver:
        time.sleep(0.05)
    time.sleep(3.0)


ACTIONS = {"kill": _die, "interrupt": _interrupt, "terminate": _terminate,
           "interrupt-leader": _interrupt_leader, "hangup": _hang_up,
           "kill-leader": _kill_leader}


def _write_half(write, path) -> None:
    """Write a file completely into memory, put half of it at `path`, and die."""
    import io

    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    Path(path).write_bytes(data[:len(data) // 2])
    _die()


def install(point: str, n: int, action: str = "kill") -> None:
    if action not in ACTIONS:
        raise SystemExit(f"unknown fault action {action!r}")
    countdown = _Countdown(n)
    interrupt = action != "kill"  # a signal, after which the work goes on
    fault = ACTIONS[action]

    def write_fault(write, where) -> None:
        """At a write point: interrupt, then write on; or write half of the file and die."""
        if interrupt:
            fault()
        else:
            _write_half(write, where)

    if point == "step":
        from malt.training.trainer import Trainer

        original_step = Trainer.train_step

        def step(self, batch):
            report = original_step(self, batch)
            if countdown.reached():
                fault()
            return report

        Trainer.train_step = step
    elif point == "day-end":
        from malt.training.trainer import Trainer

        original_save = Trainer.save

        def save(self):
            original_save(self)
            if self.state.step_in_day == 0 and countdown.reached():
                fault()

        Trainer.save = save
    elif point == "checkpoint-write":
        from malt.runs import checkpoint

        original_write_tree = checkpoint.write_tree

        def write_tree(path, tree, **kwargs):
            original_write_tree(path, tree, **kwargs)
            if countdown.reached():
                if interrupt:
                    fault()
                else:
                    data = Path(path).read_bytes()
                    Path(path).write_bytes(data[:len(data) // 2])
                    _die()

        checkpoint.write_tree = write_tree
    elif point == "parquet-write":
        import pyarrow.parquet as pq

        original_write = pq.write_table

        def write_table(table, where, *args, **kwargs):
            if countdown.reached():
                write_fault(lambda b: original_write(table, b, *args, **kwargs), where)
            return original_write(table, where, *args, **kwargs)

        pq.write_table = write_table
    elif point == "cache-write":
        from malt.data import cache

        original_job_write = cache._Job.write

        def job_write(self, out, first_row):
            original_job_write(self, out, first_row)
            if countdown.reached():
                fault()

        cache._Job.write = job_write
    elif point == "convert":
        from malt.data.reader import DayConverter

        original_convert = DayConverter.convert

        def convert(self, *args, **kwargs):
            stats = original_convert(self, *args, **kwargs)
            if countdown.reached():
                fault()
            return stats

        DayConverter.convert = convert
    elif point == "write":
        from malt import outputs

        original_atomic_write = outputs.atomic_write

        def atomic_write(path, write):
            if countdown.reached():
                fault()
            return original_atomic_write(path, write)

        outputs.atomic_write = atomic_write
    elif point == "evaluate":
        from malt.jobs import train

        original_score_days = train.score_days

        def score_days(*args, **kwargs):
            if countdown.reached():
                fault()
            return original_score_days(*args, **kwargs)

        train.score_days = score_days
    elif point == "serve-load":
        from malt.serve.model import ServedModel

        original_load = ServedModel.load.__func__

        def load(cls, source, **kwargs):
            model = original_load(cls, source, **kwargs)
            if countdown.reached():
                fault()
            return model

        ServedModel.load = classmethod(load)
    else:
        raise SystemExit(f"unknown fault point {point!r}")


_FAULT = "MALT_TEST_FAULT"
"""The environment variable that hands the fault to spawned workers."""
_CLAIM = "MALT_TEST_FAULT_CLAIM"
"""The file the first process to fire a once-only fault creates (a fresh path per command)."""
CLAIMS_FOLDER = "MALT_TEST_FAULT_CLAIMS_FOLDER"
"""Where the claim files' folders go (the tests point it under pytest's temporary folders);
unset: the system's temporary folder."""

if __name__ == "__main__":
    separator = sys.argv.index("--")
    point, count, *action = fault = sys.argv[1:separator]
    assert len(action) <= 1, "usage: faults.py POINT N [ACTION] -- malt arguments"
    if action and action[0] != "kill" and os.getpgrp() != os.getpid():
        raise SystemExit("a signal fault signals its process group's leader: start the "
                         "command in a new session (start_new_session=True)")
    os.environ[_FAULT] = " ".join(fault)
    import tempfile

    claims = tempfile.mkdtemp(prefix="malt-fault-", dir=os.environ.get(CLAIMS_FOLDER))
    os.environ[_CLAIM] = str(Path(claims) / "fired")
    install(point, int(count), *action)
    arguments = sys.argv[separator + 1:]
    from malt.cli import main

    sys.exit(main(arguments))
elif __name__ == "__mp_main__" and _FAULT in os.environ:
    point, count, *action = os.environ[_FAULT].split()
    install(point, int(count), *action)
