"""Config files and flags: a value of the wrong type is an error naming key, value and type."""

import pytest

from malt.cli import main


@pytest.mark.parametrize("line, section, message", [
    ('lr = "fast"', "train", "train.lr = 'fast': expected a number"),
    ('batch_size = "4096"', "train", "train.batch_size = '4096': expected an integer"),
    ('seed = "abc"', None, "seed = 'abc': expected an integer"),
    ('shuffle = "no"', "train", "train.shuffle = 'no': expected true or false"),
    ('amp = "false"', "train", "train.amp = 'false': expected true or false"),
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
