"""How a command shows training progress: a bar on a terminal, steady lines everywhere else.

When stdout is not a terminal (CI, nohup, a log file) a progress bar would be invisible or a
mess of carriage returns, so a line is printed at the first step, then every `every` seconds,
and at the last step: day, step of total, samples/s, loss and time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from malt.training.progress import ProgressFn, TrainProgress

if TYPE_CHECKING:
    from malt.deploy.predict import PredictProgress

LINE_EVERY_S = 30.0


def format_duration(seconds: float | None) -> str:
    """`1h02m`, `3m05s`, `42s`; `?` when unknown."""
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_progress(p: TrainProgress) -> str:
    """One line: day, step of total, speed, loss and time left."""
    loss = "–" if p.loss is None else f"{p.loss:.4f}"
    return (f"day {p.day} ({p.day_index + 1}/{p.days})  step {p.step:,}/{p.total_steps:,}  "
            f"{p.samples_per_s:,.0f} samples/s  loss {loss}  ETA {format_duration(p.eta_s)}")


def format_rows_progress(p: PredictProgress) -> str:
    """One line of a prediction: rows of total, speed and time left."""
    speed = p.rows / p.seconds if p.seconds > 0 else 0.0
    left = (p.total_rows - p.rows) / speed if speed > 0 else None
    return (f"scored {p.rows:,}/{p.total_rows:,} rows  {speed:,.0f} rows/s  "
            f"ETA {format_duration(left)}")


class ProgressLines:
    """Prints `format` lines (of any progress event with a `finished` flag) at a steady
    interval (see the module docstring)."""

    def __init__(self, every: float = LINE_EVERY_S, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 format: Callable[[Any], str] = format_progress):
        self.every, self.clock, self.format = every, clock, format
        self.write = write or (lambda line: print(line, flush=True))
        self._last: float | None = None

    def __call__(self, p: TrainProgress | PredictProgress) -> None:
        now = self.clock()
        if self._last is None or now - self._last >= self.every or p.finished:
            self.write(self.format(p))
            self._last = now


class ProgressBar:
    """A tqdm bar with the same facts as the lines."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._bar = None

    def __call__(self, p: TrainProgress) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=p.total_steps, initial=p.step - 1, unit="step",
                             file=self.stream, dynamic_ncols=True)
        self._bar.update(p.step - self._bar.n)
        loss = "–" if p.loss is None else f"{p.loss:.4f}"
        self._bar.set_postfix_str(f"day {p.day} loss {loss} {p.samples_per_s:,.0f} samples/s",
                                  refresh=False)
        if p.finished:
            self._bar.close()
            self._bar = None


def console_progress(stream: TextIO | None = None) -> ProgressFn:
    """A bar when `stream` (default stdout) is a terminal, else steady lines."""
    stream = stream or sys.stdout
    return ProgressBar(stream) if stream.isatty() else ProgressLines()
