"""Vocabularies built from the training days: counts over the field and the sequences that
share it, rare ids left to the OOV row, test and held-out days never read."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from malt.cli import main
from malt.data import Schema
from malt.data.layout import day_path, write_day, write_vocab
from malt.data.vocab_build import build_vocabs
from malt.errors import ConfigError, DataError
from support.mac_data import fixed_lists

SCHEMA = """
user_column = "uid"
labels = ["y"]
sequence_pad = "0"
[fields]
ad = ["item"]
context = ["page"]
[id_sequences]
history = { shares = "item", length = 2 }
"""


def write_days(root, days):
    """`days`: one dict per day (uid, item, page, history); the last one is the test day."""
    for d, columns in enumerate(days):
        n = len(columns["uid"])
        table = pa.table({"uid": pa.array(columns["uid"]), "item": pa.array(columns["item"]),
                          "page": pa.array(columns["page"]),
                          "history": fixed_lists(np.array(columns["history"])),
                          "y": pa.array(np.zeros(n, np.float32))})
        write_day(day_path(root, "test" if d == len(days) - 1 else "train", d), table)
    (root / "schema.toml").write_text(SCHEMA)
    return root


DAYS = [
    {"uid": ["u1", "u2", "u1"], "item": [5, 7, 5], "page": [1, 1, 2],
     "history": [[9, 0], [5, 0], [0, 0]]},
    {"uid": ["u3", "u1"], "item": [7, 8], "page": [2, 3], "history": [[9, 9], [0, 0]]},
    {"uid": ["u4", "u9"], "item": [11, 12], "page": [4, 4], "history": [[13, 0], [0, 0]]},
]


def vocab(root, column):
    return json.loads((root / "vocabs" / f"{column}.json").read_text())


def test_vocabs_come_from_the_training_days_and_the_sequences_sharing_the_field(tmp_path):
    root = write_days(tmp_path / "d", DAYS)
    built = build_vocabs(root, Schema.load(root / "schema.toml"))
    assert [(b.column, b.ids, b.rare) for b in built] == [("uid", 3, 0), ("item", 4, 0),
                                                          ("page", 3, 0)]
    assert vocab(root, "uid") == {"u1": 0, "u2": 1, "u3": 2}  # test-day users are not in it
    assert vocab(root, "item") == {"5": 0, "7": 1, "8": 2, "9": 3}  # 9 from history; no pad
    assert vocab(root, "page") == {"1": 0, "2": 1, "3": 2}


def test_rare_ids_held_out_days_and_existing_vocabs(tmp_path):
    root = write_days(tmp_path / "d", DAYS)
    write_vocab(root / "vocabs", "page", ["1", "2", "3", "4"])
    schema = Schema.load(root / "schema.toml")
    built = build_vocabs(root, schema, min_count=2)
    # item counts: 5 x3, 7 x2, 8 x1, 9 x3 (history)
    assert [(b.column, b.ids, b.rare) for b in built] == [("uid", 1, 2), ("item", 3, 1)]
    assert vocab(root, "item") == {"5": 0, "7": 1, "9": 2}
    assert vocab(root, "page") == {"1": 0, "2": 1, "3": 2, "4": 3}  # left alone
    for column in ("uid", "item"):
        (root / "vocabs" / f"{column}.json").unlink()
    build_vocabs(root, schema, held_out=1)  # the last training day is never read
    assert vocab(root, "uid") == {"u1": 0, "u2": 1} and "8" not in vocab(root, "item")
    with pytest.raises(ConfigError, match="no training day left to build vocabs from"):
        build_vocabs(root, schema, held_out=2)
    with pytest.raises(ConfigError, match="--min-count must be at least 1, got 0"):
        build_vocabs(root, schema, min_count=0)


def test_prepare_builds_the_vocabs_and_reports_test_oov(tmp_path, capsys):
    root = write_days(tmp_path / "d", DAYS)
    assert main(["prepare", "--data", str(root)]) == 3
    assert "--build-vocabs" in capsys.readouterr().err
    assert main(["prepare", "--data", str(root), "--build-vocabs"]) == 0
    out = capsys.readouterr().out
    assert "vocabs/item.json: 4 ids (0 seen fewer than 1 times go to the OOV row)" in out
    # test day: users u4, u9 and items 11, 12 are unknown, pages 4 too
    assert "test rows with an out-of-vocabulary id: uid 2 (100.0%), item 2 (100.0%), " \
           "page 2 (100.0%)" in out
    assert main(["prepare", "--data", str(root), "--build-vocabs"]) == 0
    assert "every field has its vocab already" in capsys.readouterr().out


def test_a_schema_column_missing_from_the_data_is_named_before_any_vocab_is_written(
        tmp_path, capsys):
    root = write_days(tmp_path / "d", DAYS)
    (root / "schema.toml").write_text(SCHEMA.replace('context = ["page"]', 'context = ["pgae"]'))
    schema = Schema.load(root / "schema.toml")
    with pytest.raises(DataError) as err:
        build_vocabs(root, schema)
    first_day = day_path(root, "train", 0)
    assert (err.value.file, err.value.column) == (str(first_day), "pgae")
    assert str(err.value).endswith("missing columns ['pgae'] (did you mean 'page'?)")
    assert not (root / "vocabs").exists()
    for command in (["prepare", "--data", str(root)],
                    ["prepare", "--data", str(root), "--build-vocabs"]):
        assert main(command) == 3
    printed = capsys.readouterr().err
    assert "Traceback" not in printed
    assert printed.count(f"file {first_day}, column 'pgae': missing columns ['pgae'] (did you "
                         "mean 'page'?)") == 1
