"""The worked example of docs/own-data.md with a bag, a ragged history, per-table widths and a
backbone: its schema and commands, taken from the page, run on the shop of test_own_data with
two list columns more, and `malt prepare` prints the lines the page quotes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from test_own_data import GUIDE, write_shop

from malt.cli import main
from malt.data.layout import write_day
from support.bag_data import ragged_ids

HEADING = "### Worked example: a bag, a ragged history, widths and a backbone"


def example_blocks() -> dict[str, str]:
    """The fenced blocks of the worked example by language (toml, bash, text)."""
    text = GUIDE.read_text()
    section = text[text.index(HEADING):]
    section = section[:section.index("\n## ")]
    return {lang: body for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S)}


def write_shop_with_lists(root: Path, seed: int = 1) -> Path:
    """The shop of test_own_data with `tags` (0 to 12 of 40 tags per row) and `history` (0 to
    25 of 3,000 skus per row, the shop's skus 1000 to 1099 among them)."""
    write_shop(root)
    rng = np.random.default_rng(seed)
    for path in sorted(root.glob("*/*.parquet")):
        table = pq.read_table(path)
        rows = table.num_rows
        table = table.append_column("tags", ragged_ids(rng, rows, 12, 40))
        write_day(path, table.append_column("history", ragged_ids(rng, rows, 25, 3000)))
    return root


def test_the_worked_examples_commands_run_and_print_what_the_guide_quotes(
        tmp_path, monkeypatch, capsys):
    blocks = example_blocks()
    data = write_shop_with_lists(tmp_path / "shop")
    (data / "schema.toml").write_text(blocks["toml"])
    monkeypatch.chdir(tmp_path)
    commands = [shlex.split(line) for line in re.sub(r"\\\n\s*", " ", blocks["bash"])
                .splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["malt", "prepare"], ["malt", "train"]]
    printed = []
    for command in commands:
        assert main([str(data) if arg == "SHOP" else arg for arg in command[1:]]) == 0
        printed.append(capsys.readouterr().out)
    reported = printed[0].splitlines()
    for line in blocks["text"].splitlines():
        assert line in reported, line
    config = json.loads((tmp_path / "runs/moae-din/config.json").read_text())
    assert config["model"]["encoder"]["name"] == "din"
    assert (tmp_path / "runs/moae-din/metrics.json").is_file()
