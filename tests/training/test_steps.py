"""The step plan of one pass: step counts, the `auto` batch size and the batch size suggested
for a pass that is too short."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.training.steps import (
    MIN_STEPS,
    StepPlan,
    auto_batch_size,
    batch_size_for_steps,
    pass_steps,
)

day_rows = st.lists(st.integers(1, 5000), min_size=1, max_size=6)


def test_a_pass_counts_each_days_partial_step():
    assert pass_steps([10, 10, 1], 4) == 3 + 3 + 1
    assert pass_steps([4096], 4096) == 1 and pass_steps([4097], 4096) == 2


@pytest.mark.parametrize("rows, expected", [
    ([21_000] * 5, 512),          # 105k rows: 4096 would be 30 steps, 512 is 210
    ([3_700_000] * 20, 4096),     # MAC scale keeps the paper's batch
    ([51_200], 256),              # exactly 200 steps of 256
    ([1_000], 256),               # no size reaches 200 steps: the smallest
    ([409_600], 2048),            # 2048 gives exactly 200 steps, 4096 only 100
])
def test_auto_takes_the_largest_size_that_gives_enough_steps(rows, expected):
    assert auto_batch_size(rows) == expected


@given(day_rows, st.integers(1, 400))
def test_the_suggested_batch_is_the_largest_that_gives_the_steps(rows, steps):
    size = batch_size_for_steps(rows, steps)
    if sum(rows) < steps:
        assert size is None
    else:
        # a batch larger than the largest day changes nothing, so that is the largest asked
        assert pass_steps(rows, size) >= steps
        assert size == max(rows) or pass_steps(rows, size + 1) < steps


def test_a_short_pass_is_warned_about_with_the_batch_that_fixes_it():
    plan = StepPlan.of([21_000] * 5, 4096)
    assert (plan.steps, plan.rows, plan.days, plan.too_few) == (30, 105_000, 5, True)
    assert plan.suggested_batch_size == 538  # 40 steps a day; 539 gives 39
    assert pass_steps([21_000] * 5, 538) == 200 > pass_steps([21_000] * 5, 539)
    line, warning = plan.describe().split("\n")
    assert line == "one pass: 30 optimiser steps of 4,096 rows (105,000 rows over 5 training days)"
    assert warning.startswith(f"warning: fewer than {MIN_STEPS} steps under-trains a model "
                              "(--batch-size 538 gives 200; --batch-size auto picks")


def test_a_long_enough_pass_is_one_line_and_too_little_data_is_said():
    plan = StepPlan.of([21_000] * 5, 512)
    assert plan.describe() == ("one pass: 210 optimiser steps of 512 rows (105,000 rows over "
                               "5 training days)") and plan.suggested_batch_size is None
    assert "the data has fewer rows than that" in StepPlan.of([150], 256).describe()
