"""Config files and flags: a value of the wrong type is an error naming key, value and type."""

import pytest

from malt.cli import main


@pytest.mark.parametrize("line, section, message", [
    ('lr = "fast"', "train", "train.lr = 'fast': expected a number"),
    ('batch_size = "4096"', "train",
     "train.batch_size = '4096': expected an integer >= 1 or one of 'auto'"),
    ('seed = "abc"', None, "seed = 'abc': expected an integer"),
    ('shuffle = "no"', "train", "train.shuffle = 'no': expected true or false"),
    ('precision = "bf32"', "train", "train.precision = 'bf32'"),
    ('aux = "first"', "task", "task.aux = 'first': expected a list of strings"),
    ('device = "gpu"', "train", "train.device = 'gpu': expected one of 'auto', 'cpu', 'cuda'"),
    ('embed_dim = "8"', "model.encoder", "model.encoder.embed_dim = '8': expected an integer"),
    ('padding_mask = 0', "model.encoder", "model.encoder.padding_mask = 0: expected true or false"),
    ('experts = 2', "model", "model: unknown key 'experts'"),  # MMoE's option, not BASE's
])
def test_config_values_of_the_wrong_type_exit_3(tmp_path, capsys, line, section, message):
    config = tmp_path / "run.toml"
    config.write_text(line + "\n" if section is None else f"[{section}]\n{line}\n")
    code = main(["train", "--config", str(config), "--data", str(tmp_path), "--out",
                 str(tmp_path / "out")])
    assert code == 3
    error = capsys.readouterr().err
    assert message in error and str(config) in error
    assert not (tmp_path / "out").exists()


def test_model_options_are_checked_against_the_model_config(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--model-option", "encoder.padding_mask=no"]) == 3
    assert "model.encoder.padding_mask = 'no': expected true or false" in \
        capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--model",
                 "ple", "--model-option", "experts=3"]) == 3
    assert "unknown key 'experts'" in capsys.readouterr().err


def test_an_unknown_flag_shows_the_commands_own_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--out", "x", "--learning-rate", "1"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: malt train") and "unrecognized arguments: --learning-rate" \
        in error


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "fast", "--lr = 'fast': expected a number"),
    ("--batch-size", "4096.5",
     "--batch-size = '4096.5': expected an integer >= 1 or one of 'auto'"),
    ("--seed", "abc", "--seed = 'abc': expected an integer"),
    ("--device", "gpu", "--device = 'gpu': expected one of 'auto', 'cpu', 'cuda'"),
])
def test_flag_values_of_the_wrong_type_exit_3(tmp_path, capsys, flag, value, message):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), flag,
                 value]) == 3
    assert message in capsys.readouterr().err


def test_every_config_field_is_a_flag_with_help_and_the_flags_reach_the_config():
    import argparse

    from malt.commands._options import add_run_options, config_flags, resolve_config

    flags = list(config_flags())
    assert {f.path for f in flags} >= {("seed",), ("data", "path"), ("train", "lr"),
                                       ("task", "adm_alpha_per_action")}
    undocumented = [f.option for f in flags if not f.doc]
    assert not undocumented
    parser = argparse.ArgumentParser()
    add_run_options(parser)
    config = resolve_config(parser.parse_args([
        "--data", "d", "--batch-size", "512", "--aux", "first", "cat", "--no-shuffle",
        "--grad-clip", "1.5", "--model", "mmoe", "--model-option", "experts=3",
        "--model-option", "tower.dims=[8]"]))
    assert (config.data.path, config.train.batch_size, config.task.aux) == \
        ("d", 512, ["first", "cat"])
    assert config.train.shuffle is False and config.train.grad_clip == 1.5
    assert config.model == {"name": "mmoe", "release_defaults": False, "experts": 3,
                            "tower": {"dims": [8]}}
    assert config.model_config().experts == 3 and config.model_config().tower.dims == (8,)


def test_help_shows_the_run_configs_default_only_where_it_applies(capsys):
    # `malt study` runs over its preset's settings, so the run config's default would mislead.
    for command, shown in (["train"], True), (["study"], False):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "Rows per optimiser step (over all processes); `auto`:" in text
        assert ("large data set). (default: auto)" in text) is shown
