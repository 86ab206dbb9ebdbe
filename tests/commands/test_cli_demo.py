"""`malt demo`: a two-run study whose directory holds the runs of one data set."""

import json
from pathlib import Path

import pytest

from malt.cli import main
from malt.commands.demo import DEMO_KIND, simulated_data
from malt.errors import ConfigError
from malt.experiments.study import claim_output
from malt.outputs import OutputDir
from support.mac_data import write_random_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("demo") / "data", days=3, rows=301)


def test_the_demo_trains_both_runs_once_and_reports_them(data, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(data), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "training base (main: last, aux: none)" in printed
    assert "training moae (main: last, aux: first, linear, mta, cat)" in printed
    assert "ΔGAUC (pt)" in printed and "by conversion-path complexity" in printed
    assert "MoAE − BASE on 'last'" in printed and "95% interval" in printed
    assert "verdict: " in printed and "note: one seed" in printed
    runs = sorted(p.parent.name for p in (out / "runs").glob("*/metrics.json"))
    assert [r.split("-")[0] for r in runs] == ["base", "moae"]
    assert f"malt eval --run {out / 'runs' / runs[1]} --baseline {out / 'runs' / runs[0]}" \
        in printed
    assert json.loads((out / "study.json").read_text()) == {"data": str(data.resolve())}

    assert main(["demo", "--data", str(data), "--out", str(out), "--device", "cpu"]) == 0
    again = capsys.readouterr().out
    assert "reusing 2 finished run(s)" in again and "\ntraining " not in again
    assert again[again.index("\nmodel "):] == printed[printed.index("\nmodel "):]


def test_a_demo_directory_holds_the_runs_of_one_data_set(tmp_path):
    out = tmp_path / "demo"
    first, second = simulated_data(out, "tiny", 1), simulated_data(out, "tiny", 2)
    assert first != second and simulated_data(out, "small", 1) != first
    claim_output(out, first, kind=DEMO_KIND)
    OutputDir(out / "runs" / "base", "run").claim()
    claim_output(out, first, kind=DEMO_KIND)  # the same data: kept
    assert (out / "runs" / "base").is_dir()
    with pytest.raises(ConfigError, match="data-tiny-seed1.*--overwrite"):
        claim_output(out, second, kind=DEMO_KIND, other_data="pass --overwrite")
    assert (out / "runs" / "base").is_dir()
    claim_output(out, second, kind=DEMO_KIND, overwrite=True)
    assert json.loads((out / "study.json").read_text())["data"] == str(second)
    assert not (out / "runs").exists()


def test_a_demo_never_replaces_files_it_did_not_write(tmp_path):
    out = tmp_path / "demo"
    claim_output(out, simulated_data(out, "tiny", 1), kind=DEMO_KIND)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"):
        claim_output(out, simulated_data(out, "tiny", 2), kind=DEMO_KIND, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a malt output"):
        claim_output(elsewhere, simulated_data(elsewhere, "tiny", 1), kind=DEMO_KIND,
                     overwrite=True)
    assert [p.name for p in elsewhere.iterdir()] == ["x.txt"]
