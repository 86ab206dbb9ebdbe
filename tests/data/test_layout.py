"""The MAC layout on disk: which files are days, and what is said about the others."""

from __future__ import annotations

import logging

import pyarrow.parquet as pq

from malt.cli import main
from malt.data import prepare
from malt.data.layout import day_path, find_layout
from support.mac_data import write_random_dataset


def test_files_that_are_not_parquet_days_are_named_not_read(tmp_path, caplog):
    root = write_random_dataset(tmp_path / "d", days=4, rows=40)
    saved_as_csv = root / "train" / "train-02.csv"
    pq.read_table(day_path(root, "train", 2)).to_pandas().to_csv(saved_as_csv)
    day_path(root, "train", 2).unlink()
    (root / "train" / "notes.txt").write_text("from the export job")
    (root / "train" / "old").mkdir()
    for quiet in (".DS_Store", "_SUCCESS"):
        (root / "train" / quiet).write_text("")
    (root / "test" / "test.parquet.bak").write_bytes(day_path(root, "test", 0).read_bytes())

    with caplog.at_level(logging.WARNING, logger="malt"):
        layout = find_layout(root)
    assert [p.name for p in layout.train] == ["train-00.parquet", "train-01.parquet"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{root / 'train'}: not read, only *.parquet files are days: notes.txt, old, "
        "train-02.csv (convert a day saved in another format to parquet; move other files out "
        "of the folder to silence this)",
        f"{root / 'test'}: not read, only *.parquet files are days: test.parquet.bak (convert a "
        "day saved in another format to parquet; move other files out of the folder to "
        "silence this)"]
    assert [d.name for d in prepare(root).days] == ["train-00", "train-01", "test"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="malt"):
        assert main(["prepare", "--data", str(root)]) == 0
    assert ["train-02.csv" in r.getMessage() for r in caplog.records] == [True, False]


def test_a_clean_layout_says_nothing(tmp_path, caplog):
    root = write_random_dataset(tmp_path / "d", days=2, rows=20)
    with caplog.at_level(logging.WARNING, logger="malt"):
        assert len(find_layout(root).days) == 2
    assert caplog.records == []


def test_days_are_in_natural_order(tmp_path):
    root = write_random_dataset(tmp_path / "d", days=3, rows=20)
    for day, name in ((0, "day-9.parquet"), (1, "day-10.parquet")):
        day_path(root, "train", day).rename(root / "train" / name)
    assert [p.name for p in find_layout(root).train] == ["day-9.parquet", "day-10.parquet"]
