"""`malt models`: one line per model with its counts; vocab-size flags; errors."""

from __future__ import annotations

import pytest

from malt.cli import main
from malt.commands.models import vocab_sizes
from malt.errors import ConfigError


def test_lists_every_model_with_reference_counts(capsys):
    assert main(["models", "--params", "--release-defaults", "--aux", "first", "mta",
                 "linear", "--vocab-size", "100", "--vocab-size", "ad_feat0=1000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == ["base", "shared_bottom", "mmoe", "ple", "home", "natal", "moae",
                          "single_task", "star", "taml", "kaml"]
    assert "dense     619,484" in rows["ple"]                # reference 619,616 − 4·33
    assert f"embedding {16 * (15 * 100 + 1000):>13,}" in rows["base"]


def test_without_params_only_names_and_summaries(capsys):
    assert main(["models", "--main", "first", "--aux", "last"]) == 0
    out = capsys.readouterr().out
    assert "moae" in out and "dense" not in out


def test_vocab_size_specs():
    fields = ("a", "b")
    assert vocab_sizes(fields, []) == {"a": 1000, "b": 1000}
    assert vocab_sizes(fields, ["7", "b=9"]) == {"a": 7, "b": 9}
    for bad in (["c=3"], ["a=0"], ["many"]):
        with pytest.raises(ConfigError):
            vocab_sizes(fields, bad)


def test_bad_views_exit_with_a_message(capsys):
    assert main(["models", "--aux", "fist"]) == 3
    assert "unknown label 'fist'" in capsys.readouterr().err


def test_models_without_a_cartesian_head_are_counted_without_cat(capsys):
    assert main(["models", "--params", "--aux", "first", "mta", "linear", "cat"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "dense     858,062" in rows["moae"]                # with its cat tower
    assert "(counted without 'cat')" in rows["single_task"]
    assert "without" not in rows["moae"]
    assert main(["models", "--params", "--aux", "first", "mta", "linear"]) == 0
    plain = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert plain["single_task"].split("  Single")[0] == rows["single_task"].split("  Single")[0]


def test_a_bags_table_is_counted_with_the_fields(tmp_path, capsys):
    schema = tmp_path / "tagged.toml"
    schema.write_text('user_column = "u"\nlabels = ["last"]\n[fields]\nad = ["item"]\n'
                      '[bags]\ntags = {group = "ad", max_length = 3}\n')
    assert main(["models", "--params", "--schema", str(schema), "--vocab-size", "10",
                 "--vocab-size", "tags=30"]) == 0
    out = capsys.readouterr().out
    assert "40 embedding rows in 2 tables" in out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert f"embedding {16 * 40:>13,}" in rows["base"]
