"""task_weights.csv: rows written whole, read back for a resumed run up to its checkpoint."""

import csv

import pytest

from malt.training.weights_table import TaskWeightsTable


def test_the_table_holds_a_row_per_logged_step_and_resumes_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "task_weights.csv"
    table = TaskWeightsTable.resumed(path, 10)  # no file yet: a new, empty table at `path`
    assert table.rows == []
    for step, weight in ((1, 0.25), (2, 0.5), (4, 0.125)):
        table.add(step, {"last": 1.0, "first": weight})
    table.write()
    assert path.read_text() == "step,last,first\n1,1.0,0.25\n2,1.0,0.5\n4,1.0,0.125\n"
    assert [p.name for p in tmp_path.iterdir()] == ["task_weights.csv"]  # no temporary left
    resumed = TaskWeightsTable.resumed(path, 2)  # the checkpoint holds the first 2 steps
    assert resumed.rows == [{"step": 1.0, "last": 1.0, "first": 0.25},
                            {"step": 2.0, "last": 1.0, "first": 0.5}]
    resumed.add(3, {"last": 0.9, "first": 1 / 3})
    resumed.write()
    rows = list(csv.DictReader(path.read_text().splitlines()))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert float(rows[-1]["first"]) == 1 / 3  # every digit kept


def test_a_task_first_seen_later_gets_its_own_column(tmp_path):
    table = TaskWeightsTable(tmp_path / "t.csv")
    table.add(1, {"last": 1.0})
    table.add(2, {"last": 1.0, "rank": 0.5})
    table.write()
    assert (tmp_path / "t.csv").read_text().splitlines() == ["step,last,rank", "1,1.0,",
                                                             "2,1.0,0.5"]
    assert TaskWeightsTable.resumed(tmp_path / "t.csv", 5).rows[0] == {"step": 1.0, "last": 1.0}


@pytest.mark.parametrize("steps_done, kept", [(0, 0), (1, 1), (3, 1), (4, 2)])
def test_resuming_keeps_exactly_the_rows_of_the_steps_done(tmp_path, steps_done, kept):
    table = TaskWeightsTable(tmp_path / "t.csv")
    table.add(1, {"last": 1.0})
    table.add(4, {"last": 1.0})
    table.write()
    assert len(TaskWeightsTable.resumed(tmp_path / "t.csv", steps_done).rows) == kept
