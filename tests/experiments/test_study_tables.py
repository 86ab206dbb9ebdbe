"""Result tables: mean ± std over seeds, best bold / second underlined, CSV and Markdown."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from malt.experiments.tables import Column, Table, format_value, write_tables
from malt.outputs import OutputDir


def _frame() -> pd.DataFrame:
    """Three models × two columns, three seeds each (hand-made)."""
    records = []
    values = {
        ("A", "auc"): [0.80, 0.82, 0.84],   # mean 0.82, std 0.02
        ("B", "auc"): [0.85, 0.85, 0.85],   # best
        ("C", "auc"): [0.83, 0.83, 0.83],   # second
        ("A", "gauc"): [0.70, 0.70, 0.70],  # second (tied with C)
        ("B", "gauc"): [0.60, 0.60, 0.60],
        ("C", "gauc"): [0.70, 0.70, 0.70],
    }
    for (row, col), seeds in values.items():
        records += [{"row": row, "column": col, "value": v} for v in seeds]
    records.append({"row": "A", "column": "gauc", "value": 0.73})  # A best once rounded
    return pd.DataFrame.from_records(records)


def _table() -> Table:
    return Table.from_frame(_frame(), title="T", row_header="Model",
                            columns=[Column("auc", "AUC"), Column("gauc", "GAUC")])


def test_stats_are_mean_sample_std_and_count():
    table = _table()
    mean, std, n = table.stats("A", "auc")
    assert (round(mean, 10), round(std, 10), n) == (0.82, 0.02, 3)
    mean, std, n = table.stats("A", "gauc")
    assert n == 4 and mean == pytest.approx(0.7075)
    assert math.isnan(table.stats("B", "missing")[0])


def test_best_is_bold_and_second_is_underlined_per_column():
    md = _table().markdown().splitlines()
    rows = {line.split(" | ")[0].strip("| "): line for line in md if line.startswith("| ")}
    assert "**0.8500 ± 0.0000**" in rows["B"] and "<u>0.8300 ± 0.0000</u>" in rows["C"]
    assert "**" not in rows["A"].split(" | ")[1] and "<u>" not in rows["A"].split(" | ")[1]
    # GAUC: A best (0.7075), C second (0.7000), B unmarked
    assert "**0.7075 ± 0.0150**" in rows["A"]
    assert "<u>0.7000 ± 0.0000</u>" in rows["C"]
    assert "| 0.6000 ± 0.0000 |" in rows["B"] and "<u>" not in rows["B"]


def test_equal_displayed_values_share_a_mark():
    table = Table("T", "Model", ["a", "b", "c", "d"], [Column("x", "X")])
    for row, value in zip("abcd", [0.91234, 0.91236, 0.9, 0.8]):
        table.add(row, "x", value)  # a and b both print 0.9123 (a) / 0.9124 (b)
    marks = table.marks()
    assert marks == {("b", "x"): "best", ("a", "x"): "second"}
    table.values[("a", "x")] = [0.91241]  # now both print 0.9124
    assert table.marks() == {("a", "x"): "best", ("b", "x"): "best", ("c", "x"): "second"}


def test_rank_groups_unranked_columns_and_row_kinds():
    table = Table("T", "Method", ["m1", "m2", "Δ"], [Column("x", "X"),
                                                      Column("n", "N", kind="count", rank=False)],
                  rank_groups=[["m1", "m2"]], row_kinds={"Δ": "delta"})
    for row, x, n in (("m1", 0.5, 10), ("m2", 0.6, 20), ("Δ", 0.1, 0)):
        table.add(row, "x", x)
        table.add(row, "n", n)
    assert table.marks() == {("m2", "x"): "best", ("m1", "x"): "second"}
    assert table.cell_text("Δ", table.columns[0]) == "+10.00pt"
    assert table.cell_text("m2", table.columns[1]) == "20"


def test_missing_and_text_cells():
    table = Table("T", "Model", ["a", "b"], [Column("flag", "Flag", kind="text"),
                                             Column("x", "X")])
    table.add("a", "flag", "✓")
    table.add("a", "x", 0.5)
    assert table.cell_text("b", table.columns[0]) == "–"
    assert table.cell_text("b", table.columns[1]) == "–"
    assert "| b | – | – |" in table.markdown()


@pytest.mark.parametrize("mean, std, kind, text", [
    (0.76361, None, "metric", "0.7636"),
    (0.76361, 0.00123, "metric", "0.7636 ± 0.0012"),
    (0.02123, None, "delta", "+2.12pt"),
    (-0.0003, 0.001, "delta", "-0.03 ± 0.10pt"),
    (0.0168, None, "percent", "1.68%"),
    (858194.0, None, "count", "858,194"),
    (float("nan"), None, "metric", "–"),
])
def test_format_value(mean, std, kind, text):
    assert format_value(mean, std, kind) == text


def test_csv_has_mean_std_and_count_columns(tmp_path):
    table = _table()
    frame = pd.read_csv(io.StringIO(table.csv()))
    assert list(frame.columns) == ["Model", "auc", "auc_std", "auc_n", "gauc", "gauc_std",
                                   "gauc_n"]
    a = frame.set_index("Model").loc["A"]
    assert a["auc"] == pytest.approx(0.82) and a["auc_std"] == pytest.approx(0.02)
    assert a["auc_n"] == 3
    out = OutputDir(tmp_path, "study")
    out.claim()
    paths = write_tables(out, "study", [("", table), ("extra", table)])
    assert sorted(p.name for p in paths) == ["study-extra.csv", "study.csv", "study.md"]
    assert (tmp_path / "study.md").read_text().count("**T**") == 2


def test_unknown_column_kind_is_rejected():
    with pytest.raises(ValueError, match="kind"):
        Column("x", "X", kind="ratio")


def test_a_cell_with_an_interval_prints_it_and_the_csv_carries_its_ends():
    from malt.bootstrap import PairedDelta

    table = Table("T", "Method", ["Δ a", "Δ b"], [Column("x", "X", kind="delta", rank=False)])
    table.add("Δ a", "x", 0.01)
    table.add("Δ b", "x", -0.001)
    table.add_interval("Δ a", "x", PairedDelta("gauc", 0.0052, 0.0031, 0.0074, 0.002, 0.95,
                                               1000, 500, 3))
    table.add_interval("Δ b", "x", PairedDelta("gauc", -0.001, -0.004, 0.002, 0.4, 0.95,
                                               1000, 500, 3))
    assert table.cell_text("Δ a", table.columns[0]) == "+0.52 [+0.31, +0.74]†"
    assert table.cell_text("Δ b", table.columns[0]) == "-0.10 [-0.40, +0.20]"
    frame = table.summary()
    assert list(frame.columns) == ["Method", "x", "x_std", "x_n", "x_low", "x_high",
                                   "x_p_value"]
    assert frame.loc[0, "x"] == 0.0052 and frame.loc[0, "x_low"] == 0.0031
    assert frame.loc[1, "x_p_value"] == 0.4


def test_a_table_without_intervals_keeps_its_csv_columns():
    table = Table("T", "Method", ["a"], [Column("x", "X")])
    table.add("a", "x", 0.5)
    assert list(table.summary().columns) == ["Method", "x", "x_std", "x_n"]


def test_a_studys_markdown_shows_its_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from malt.experiments.output import StudyOutput, write_output

    table = Table("T", "Model", ["a"], [Column("x", "X")])
    table.add("a", "x", 0.5)
    out = OutputDir(tmp_path, "study")
    out.claim()
    figure = plt.figure()
    paths = write_output(out, "groups", StudyOutput([("", table)], [("", figure)]))
    plt.close(figure)
    assert sorted(p.name for p in paths) == ["groups.csv", "groups.md", "groups.png"]
    assert (tmp_path / "groups.md").read_text().endswith("![groups](groups.png)\n")
