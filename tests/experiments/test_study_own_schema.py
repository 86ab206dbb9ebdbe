"""The search study on a schema of one's own, through the command line: the best MAL model
against BASE with Δ AUC, Δ GAUC, their 95 % intervals over the seeds, and the verdict, in what
the command prints and in the files it writes (fake training, the real study code)."""

from __future__ import annotations

import re
from dataclasses import replace

import pandas as pd
import pytest
from fake_training import fake_train

from malt.cli import main
from malt.data.schema import CategoricalField, Schema
from malt.experiments import engine
from support.mac_data import write_random_dataset

CLICKS = Schema(name="agency-clicks", user_column="visitor",
                fields=(CategoricalField("region", "user"), CategoricalField("campaign", "ad")),
                labels=("last_touch", "first_touch", "time_decay"))
CLICKS_TOML = """name = "agency-clicks"
user_column = "visitor"
labels = ["last_touch", "first_touch", "time_decay"]
[fields]
user = ["region"]
ad = ["campaign"]
"""
INTERVAL = r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]"
"""'+0.52 [+0.31, +0.74]': a difference in points and its interval."""


@pytest.fixture
def fake_trained_studies(monkeypatch):
    """Every study the command opens trains with `fake_train`."""
    real_open = engine.open_study

    def open_with_fake_training(*args, **kwargs):
        return replace(real_open(*args, **kwargs), train=fake_train)

    monkeypatch.setattr(engine, "open_study", open_with_fake_training)


def test_a_search_on_ones_own_schema_ends_with_intervals_and_a_verdict(tmp_path, capsys,
                                                                       fake_trained_studies):
    data = write_random_dataset(tmp_path / "clicks", CLICKS, days=4, rows=80)
    (data / "schema.toml").write_text(CLICKS_TOML)
    out = tmp_path / "study"
    assert main(["study", "search", "--data", str(data), "--out", str(out), "--models", "base",
                 "natal", "moae", "--targets", "last_touch", "--jobs", "1", "--device",
                 "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "preset `own-data` on schema 'agency-clicks'" in printed
    versus = pd.read_csv(out / "search-vs-base.csv").set_index("Method")
    assert list(versus.index) == ["NATAL", "MoAE"]
    for model in versus.index:
        line = re.search(rf"^{model} vs BASE on last_touch \(3 seeds\): ΔAUC ({INTERVAL}), "
                         rf"ΔGAUC ({INTERVAL}): (.+)$", printed, re.MULTILINE)
        assert line is not None, printed
        row = versus.loc[model]
        for metric, shown in zip(("auc", "gauc"), line.groups()):
            assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
            assert shown == (f"{100 * row[metric]:+.2f} [{100 * row[f'{metric}_low']:+.2f}, "
                             f"{100 * row[f'{metric}_high']:+.2f}]")
        assert line.group(3) == row["verdict"]
    # The fake MoAE's scores carry less noise than BASE's on every seed, on the seeds'
    # shared test rows: both intervals lie above 0, and the verdict says so.
    moae = versus.loc["MoAE"]
    assert moae["auc_low"] > 0 and moae["gauc_low"] > 0 and moae["verdict"] == "better"
    report = (out / "search.md").read_text()
    table = report[report.index("**Each model against BASE**"):]
    assert re.search(rf"^\| MoAE \| {INTERVAL}† \| {INTERVAL}† \| better \|$", table,
                     re.MULTILINE), table
    assert "95 % interval from a paired bootstrap over the test users and the seeds" in table
