"""`malt prepare`: the summary it prints and exit code 3 on bad input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from malt.cli import main
from malt.data.layout import day_path, write_day, write_vocab
from support.mac_data import write_random_dataset


def summary_rows(text: str) -> dict[str, list[str]]:
    """Day name -> the other cells of its row in the printed summary table."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["day", "rows"])
    return {line.split()[0]: line.split()[1:] for line in lines[start + 1:]
            if not line.startswith("schema")}


def test_prepare_prints_rows_users_positive_ratios_and_oov(tmp_path, capsys):
    root = write_random_dataset(tmp_path / "d", days=2, rows=200)
    write_vocab(root / "vocabs", "ad_feat5", [str(i) for i in range(40)])  # ids 40..49 unknown
    assert main(["prepare", "--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train/train-00: 200 rows (converted)" in out
    assert "pos% last" in out and "pos% mta" in out and "users" in out
    rows = summary_rows(out)
    tables = {"train/train-00": pq.read_table(day_path(root, "train", 0)),
              "test/test": pq.read_table(day_path(root, "test", 0))}
    total_oov = 0
    for name, table in tables.items():
        rows_, users, *ratios, oov = rows[name]
        assert int(rows_) == 200
        assert int(users) == len(np.unique(table["user_id"].to_numpy()))
        for label, ratio in zip(("last", "first", "linear", "mta"), ratios):
            assert float(ratio) == round(100 * np.mean(table[label].to_numpy() > 0), 2)
        expected_oov = int(np.count_nonzero(table["ad_feat5"].to_numpy() >= 40))
        assert int(oov.replace(",", "")) == expected_oov > 0
        total_oov += expected_oov
    assert f"out-of-vocabulary ids: ad_feat5 {total_oov}" in out

    assert main(["prepare", "--data", str(root)]) == 0
    assert "train/train-00: 200 rows (cached)" in capsys.readouterr().out
    assert main(["prepare", "--data", str(root), "--rebuild", "--workers", "1"]) == 0
    assert "(converted)" in capsys.readouterr().out


def test_bad_input_exits_3_with_the_place_named(tmp_path, capsys):
    root = write_random_dataset(tmp_path / "d", days=2, rows=50)
    path = day_path(root, "train", 0)
    table = pq.read_table(path)
    weights = table["linear"].to_numpy().copy()
    weights[17] = np.nan
    write_day(path, table.set_column(table.schema.get_field_index("linear"), "linear",
                                     pa.array(weights)))
    assert main(["prepare", "--data", str(root)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("malt prepare: error: ")
    assert f"file {path}" in err and "column 'linear'" in err and "row 17" in err
    assert "NaN" in err


def test_bad_schema_file_exits_3(tmp_path, capsys):
    root = write_random_dataset(tmp_path / "d", days=1, rows=10)
    schema = tmp_path / "s.yaml"
    schema.write_text("user_column: user_id\nfeilds: {}\nlabels: [last]\n")
    assert main(["prepare", "--data", str(root), "--schema", str(schema)]) == 3
    err = capsys.readouterr().err
    assert f"{schema}: unknown key 'feilds'; did you mean 'fields'?" in err


def test_missing_data_directory_exits_3(tmp_path, capsys):
    assert main(["prepare", "--data", str(tmp_path / "nope")]) == 3
    assert "does not exist" in capsys.readouterr().err


def test_prepare_warns_when_there_is_no_test_day(tmp_path, caplog):
    root = write_random_dataset(tmp_path / "d", days=3, rows=50)
    day_path(root, "test", 0).unlink()
    assert main(["prepare", "--data", str(root)]) == 0
    assert "has no test day" in caplog.text and "--eval-split validation" in caplog.text
