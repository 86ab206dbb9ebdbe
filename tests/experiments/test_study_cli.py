"""End to end through the CLI: two real runs, Table 4 and Figure 5, then a re-run that trains
nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from malt.cli import main


@pytest.mark.slow
def test_study_main_then_groups_through_the_cli(tmp_path, capsys):
    from malt.sources.simulate import simulate, size_config

    data = tmp_path / "data"
    simulate(size_config("tiny", seed=5, users=1500), data, overwrite=True)
    out = tmp_path / "study"
    common = ["--preset", "smoke", "--data", str(data), "--out", str(out), "--targets", "last",
              "--jobs", "1", "--device", "cpu"]
    assert main(["study", "main", "--models", "base", "moae", *common]) == 0
    assert "2 runs, 0 already complete" in capsys.readouterr().out
    table = pd.read_csv(out / "main.csv").set_index("Method")
    assert list(table.index) == ["BASE", "MoAE", "Δ MoAE vs BASE"]
    assert 0.5 < table.loc["MoAE", "last_auc"] <= 1.0
    assert table.loc["Δ MoAE vs BASE", "last_gauc"] == pytest.approx(
        table.loc["MoAE", "last_gauc"] - table.loc["BASE", "last_gauc"])
    assert "**Table 4" in (out / "main.md").read_text()
    assert len(list((out / "runs").iterdir())) == 2

    assert main(["study", "groups", "--models", "moae", *common]) == 0
    assert "2 runs, 2 already complete" in capsys.readouterr().out
    assert (out / "groups.png").stat().st_size > 10_000
    assert (out / "groups.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    groups = pd.read_csv(out / "groups.csv")
    assert groups.iloc[:, 0].tolist()[0] == "[1, 1.5)"
    # A group's gain carries its paired interval over the group's users, around the gain (a
    # group too small for the bootstrap on this tiny day has none, and the table says so).
    gain = groups["moae:last:gain"]
    low, high = groups["moae:last:gain_low"], groups["moae:last:gain_high"]
    bounded = low.notna()
    assert bounded.sum() >= 3 and (high.notna() == bounded).all()
    assert (low[bounded] <= gain[bounded] + 1e-12).all()
    assert (gain[bounded] <= high[bounded] + 1e-12).all() and (high > low).any()
    assert "nan" not in (out / "groups.md").read_text().lower()

    other = tmp_path / "other"
    simulate(size_config("tiny", seed=6, users=200), other)
    assert main(["study", "main", "--data", str(other), "--out", str(out)]) == 3
    assert "holds runs on the data set" in capsys.readouterr().err


def test_study_shuffle_reaches_the_runs_and_the_notes(tmp_path, capsys):
    import json

    from malt.sources.simulate import simulate, size_config

    data = tmp_path / "data"
    simulate(size_config("tiny", seed=6, users=300), data, overwrite=True)
    out = tmp_path / "study"
    assert main(["study", "main", "--preset", "smoke", "--data", str(data), "--out", str(out),
                 "--models", "base", "--targets", "last", "--jobs", "1", "--device", "cpu",
                 "--shuffle"]) == 0
    (run,) = (out / "runs").iterdir()
    assert json.loads((run / "config.json").read_text())["train"]["shuffle"] is True
    assert "Preset `smoke, shuffled within days`" in (out / "main.md").read_text()


def test_the_kaml_study_shuffles_too(tmp_path):
    from malt.experiments.engine import open_study
    from malt.experiments.options import StudyOptions

    options = StudyOptions(names=("kaml",), preset="smoke", shuffle=True, out=tmp_path / "k")
    study = open_study(options, "kaml", say=lambda line: None)
    assert study.setup.train["shuffle"] is True
    assert "Preset `smoke, shuffled within days`" in study.notes()[0]


def test_seeds_that_run_past_the_largest_seed_are_refused_before_anything(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["study", "main", "--out", str(out), "--seed", str(2**63 - 2),
                 "--seeds", "3"]) == 3
    assert f"the seeds {2**63 - 2} ... {2**63} run past the largest seed {2**63 - 1}" in \
        capsys.readouterr().err
    assert main(["study", "search", "--out", str(out), "--seed", str(2**63 - 2),
                 "--validation-seeds", "4"]) == 3
    assert f"the seeds {2**63 - 2} ... {2**63 + 1} run past" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("option, study", [
    (["--dwa-period", "5"], "grad-methods"), (["--grad-methods", "gcs"], "grad-methods"),
    (["--baselines", "star"], "kaml"), (["--delay-window-days", "3"], "delay")])
def test_an_option_of_another_study_is_refused_before_anything(tmp_path, capsys, option,
                                                                 study):
    out = tmp_path / "study"
    assert main(["study", "main", "--out", str(out), *option]) == 3
    assert f"{option[0]} is read by the {study} study only, and this command runs main" in \
        capsys.readouterr().err
    assert not out.exists()


def test_tables_name_a_given_data_directory_without_the_machines_layout(tmp_path,
                                                                        monkeypatch):
    from malt.experiments.engine import shown_path

    data = tmp_path / "studies" / "small" / "data"
    data.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert shown_path(data) == "studies/small/data"
    monkeypatch.chdir(data)
    assert shown_path(tmp_path / "studies" / "small") == "…/studies/small"
