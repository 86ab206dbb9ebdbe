"""Progress lines when stdout is not a terminal."""

import io

from malt.commands._progress import (
    ProgressLines,
    console_progress,
    format_duration,
    format_progress,
)
from malt.training.progress import TrainProgress


def _at(step: int, total: int = 100, loss: float | None = 0.25) -> TrainProgress:
    return TrainProgress(day="train-01", day_index=1, days=3, step=step, total_steps=total,
                         samples_per_s=12345.6, loss=loss, eta_s=(total - step) * 0.5)


def test_a_line_says_day_step_speed_loss_and_time_left():
    assert format_progress(_at(10)) == ("day train-01 (2/3)  step 10/100  12,346 samples/s  "
                                        "loss 0.2500  ETA 45s")
    assert "loss –" in format_progress(_at(1, loss=None))
    assert [format_duration(s) for s in (None, 5, 185, 3725)] == ["?", "5s", "3m05s", "1h02m"]


def test_lines_come_at_the_first_step_every_interval_and_the_last_step():
    now = [0.0]
    lines: list[str] = []
    show = ProgressLines(every=30, write=lines.append, clock=lambda: now[0])
    for step in range(1, 101):
        now[0] = step * 1.0  # one second per step
        show(_at(step))
    steps = [int(line.split("step ")[1].split("/")[0]) for line in lines]
    assert steps == [1, 31, 61, 91, 100]


def test_a_file_gets_lines_not_a_bar():
    assert isinstance(console_progress(io.StringIO()), ProgressLines)
