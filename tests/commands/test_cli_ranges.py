"""Every numeric flag is refused out of its range before any work: exit 3, naming the flag."""

from __future__ import annotations

import argparse
import json

import pytest

import malt.api
from malt.cli import build_parser, main
from malt.data.layout import day_path
from malt.errors import ConfigError
from malt.runs.config import RunConfig
from support.mac_data import write_random_dataset


@pytest.mark.parametrize("flags, message", [
    (["--grad-clip", "-1"], "--grad-clip = '-1': expected a number > 0 or nothing (null)"),
    (["--aux-weight", "nan"], "--aux-weight = 'nan': expected a number >= 0 or nothing"),
    (["--lr", "nan"], "--lr = 'nan': expected a number in (0, 1]"),
    (["--lr", "inf"], "--lr = 'inf': expected a number in (0, 1]"),
    (["--log-every", "0"], "--log-every = '0': expected an integer >= 1"),
    (["--seed", str(2**63)], f"--seed = '{2**63}': expected an integer in [0, {2**63 - 1}]"),
    (["--train-days", "0"], "--train-days = '0': expected an integer >= 1 or nothing"),
    (["--train-days", "-2"], "--train-days = '-2': expected an integer >= 1 or nothing"),
    (["--validation-days", "0"], "--validation-days = '0': expected an integer >= 1"),
    (["--warmup-fraction", "1"], "--warmup-fraction = '1': expected a number in [0, 1)"),
    (["--model", "kaml", "--model-option", "rlu_gamma=2"],
     "model.rlu_gamma = 2: expected a number in [0, 1]"),
])
def test_train_refuses_a_value_out_of_range_before_anything(random_mac, tmp_path, capsys, flags,
                                                           message):
    out = tmp_path / "run"
    assert main(["train", "--data", str(random_mac), "--out", str(out), *flags]) == 3
    assert message in capsys.readouterr().err
    assert not out.exists() and not (random_mac / ".malt_cache").exists()


@pytest.mark.parametrize("command, flag, value, message", [
    (["predict", "--run", "r", "--data", "d", "--out", "o.parquet"], "--batch-size", "0",
     "expected an integer >= 1"),
    (["simulate", "--out", "o"], "--days", "1", "expected an integer in [2, 100]"),
    (["simulate", "--out", "o"], "--users", "0", "expected an integer >= 1"),
    (["simulate", "--out", "o"], "--seed", "-1", "expected an integer in [0, "),
    (["demo"], "--seed", str(2**64), "expected an integer in [0, "),
    (["prepare", "--data", "d"], "--min-count", "0", "expected an integer >= 1"),
    (["prepare", "--data", "d"], "--workers", "0", "expected an integer >= 1"),
    (["prepare", "--data", "d"], "--vocab-held-out-days", "-1", "expected an integer >= 0"),
    (["study", "main"], "--seeds", "0", "expected an integer >= 1"),
    (["study", "main"], "--jobs", "0", "expected an integer >= 1"),
    (["study", "main"], "--lrs", "nan", "expected a number in (0, 1]"),
    (["study", "main", "--aux-weights", "ref"], "--aux-weights", "-0.5",
     "expected a number >= 0 or one of 'ref'"),
    (["study", "main"], "--validation-days", "0", "expected an integer >= 1"),
    (["rolling", "--start", "0", "--out", "o"], "--days", "0", "expected an integer >= 1"),
    (["rolling", "--start", "0", "--out", "o"], "--seed", "-1", "expected an integer in [0, "),
    (["data", "kuairand-sim", "--raw", "r", "--out", "o"], "--neg-keep-rate", "0",
     "expected a number in (0, 1] or one of 'auto'"),
    (["data", "kuairand-sim", "--raw", "r", "--out", "o"], "--target-rows", "0",
     "expected an integer >= 1"),
    (["data", "coverage", "--data", "d"], "--adm-alpha", "-1", "expected a number >= 0"),
    (["attribute", "--clicks", "c", "--out", "o"], "--window-days", "0",
     "expected a number > 0 (inf allowed)"),
    (["attribute", "--clicks", "c", "--out", "o"], "--half-life-days", "nan",
     "expected a number > 0"),
])
def test_every_commands_numeric_flags_are_refused_out_of_range(tmp_path, capsys, monkeypatch,
                                                              command, flag, value, message):
    monkeypatch.chdir(tmp_path)
    assert main([*command, flag, value]) == 3
    assert f"{flag} = '{value}': {message}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_every_flag_is_a_field_of_an_option_set():
    """Values are read with their field's type (range included: `read_options`,
    `given_overrides`), never by argparse (a bare int or float takes -1, 0, nan and inf)."""

    def actions(parser: argparse.ArgumentParser):
        for action in parser._actions:
            yield parser.prog, action
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from actions(sub)

    # A command's own options (opt__) and the run config's (cfg__, the model's flags included).
    own = [(prog, a.option_strings) for prog, a in actions(build_parser())
           if not a.dest.startswith(("opt__", "cfg__"))
           and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    # The run config's file, not a field.
    assert own == [("malt rolling", ["--config"]), ("malt train", ["--config"])]
    assert not [a for _, a in actions(build_parser()) if a.type is not None]

def test_train_days_beyond_the_data_and_a_data_set_without_training_days_are_refused(
        tmp_path, capsys):
    data = write_random_dataset(tmp_path / "mac", days=4)  # three training days
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--train-days", "4"]) == 3
    assert "data.train_days = 4, but" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(out), "--eval-split", "validation",
                 "--train-days", "2", "--validation-days", "2"]) == 3
    assert "needs at least 3 training days, and" in capsys.readouterr().err
    assert not out.exists()

    empty = write_random_dataset(tmp_path / "empty", days=3)
    for d in range(2):
        day_path(empty, "train", d).unlink()
    assert main(["train", "--data", str(empty), "--out", str(out)]) == 3
    assert "has no training day (train/*.parquet): nothing to train on" in \
        capsys.readouterr().err
    assert not out.exists()

BASE_WITH_AUX = "model 'base' has no head for auxiliary views, so task.aux ['first', 'linear', " \
    "'mta'] would train nothing"


def test_a_model_without_auxiliary_heads_given_auxiliary_views_is_refused_up_front(
        random_mac, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(random_mac), "--out", str(out), "--model", "base",
                 "--aux", "first", "linear", "mta"]) == 3
    assert BASE_WITH_AUX in capsys.readouterr().err
    assert not out.exists() and not (random_mac / ".malt_cache").exists()
    config = {"data": {"path": str(random_mac)}, "model": {"name": "base"},
              "task": {"aux": ["first", "linear", "mta"]}}
    with pytest.raises(ConfigError, match=BASE_WITH_AUX.replace("[", r"\[").replace("]", r"\]")):
        malt.api.train(config, out)
    assert not out.exists()
    assert RunConfig.from_dict({**config, "task": {"aux": []}}).task.aux == []


def test_a_saved_run_of_base_with_auxiliary_views_is_refused_by_every_command(tmp_path, capsys):
    """Runs that an earlier malt let through (trained, then crashed before its metrics)."""
    run = tmp_path / "old-run"
    run.mkdir()
    saved = RunConfig().to_dict()
    saved["task"]["aux"] = ["first", "linear", "mta"]
    (run / "config.json").write_text(json.dumps(saved))
    for command in (["predict", "--run", str(run), "--data", str(tmp_path), "--out",
                     str(tmp_path / "p.parquet")],
                    ["export", "--run", str(run), "--out", str(tmp_path / "m.onnx")],
                    ["eval", "--run", str(run)]):
        assert main(command) == 3
        assert BASE_WITH_AUX in capsys.readouterr().err
    with pytest.raises(ConfigError, match="has no head for auxiliary views"):
        malt.api.Run(run).config  # noqa: B018 - the config is read on first use
