"""Files that are not what they should be (a link to nothing, a directory, a binary schema, a
damaged run file): exit 3 naming the file, never a traceback; nothing written."""

from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import malt
import malt.api
from malt.cli import main
from malt.data.layout import day_path
from malt.errors import ConfigError, DataError
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data, run): a small data set and a finished BASE run on it."""
    root = tmp_path_factory.mktemp("bad-files")
    data = write_random_dataset(root / "data", days=3, rows=200)
    config = RunConfig.from_dict({"seed": 1, "data": {"path": str(data)},
                                  "task": {"main": "last"}, "train": {"batch_size": 64},
                                  "model": {"name": "base", **SMALL_BLOCKS}})
    train_run(config, root / "run")
    return data, root / "run"


@pytest.fixture
def data(tmp_path):
    return write_random_dataset(tmp_path / "data", days=3, rows=100)


def refused(capsys, *argv: str) -> str:
    """The error `malt argv` ends with (exit 3)."""
    assert main(list(argv)) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_a_link_to_nothing_where_a_day_should_be(data, tmp_path, capsys):
    day = day_path(data, "train", 1)
    day.unlink()
    day.symlink_to(tmp_path / "moved-away.parquet")
    err = refused(capsys, "prepare", "--data", str(data), "--cache", str(tmp_path / "c"))
    assert str(day) in err and "symbolic link to nothing" in err
    assert not (tmp_path / "c").exists()


def test_a_directory_where_a_day_should_be(data, tmp_path, capsys):
    day = day_path(data, "train", 1)
    day.unlink()
    day.mkdir()
    err = refused(capsys, "prepare", "--data", str(data))
    assert str(day) in err and "a directory where a day file should be" in err


def test_a_column_twice_in_a_day_file(data, capsys):
    day = day_path(data, "train", 0)
    table = pq.read_table(day)
    pq.write_table(pa.Table.from_arrays([*table.columns, table["user_id"]],
                                        names=[*table.column_names, "user_id"]), day)
    err = refused(capsys, "prepare", "--data", str(data))
    assert str(day) in err and "'user_id'" in err and "more than once" in err


@pytest.mark.parametrize("content", [b"\xff\xfe\x00name = 'x'", bytes(range(256))],
                         ids=["utf-16 mark", "every byte"])
def test_a_binary_schema_file(data, capsys, content):
    (data / "schema.toml").write_bytes(content)
    err = refused(capsys, "prepare", "--data", str(data))
    assert f"{data / 'schema.toml'} is not UTF-8 text" in err


def test_a_schema_file_that_is_a_directory_is_not_passed_over(data, capsys):
    (data / "schema.toml").mkdir()
    err = refused(capsys, "prepare", "--data", str(data))
    assert f"{data / 'schema.toml'} is a directory" in err
    assert not (data / ".malt_cache").exists()  # refused before anything was written


def test_a_dangling_schema_link_is_not_passed_over(data, tmp_path):
    (data / "schema.toml").symlink_to(tmp_path / "gone.toml")
    with pytest.raises(ConfigError, match="does not exist .a symbolic link to nothing"):
        malt.prepare(data)


def test_an_unreadable_day_directory_is_not_an_empty_one(data, monkeypatch):
    real_listdir = os.listdir

    def listdir(path):
        if str(path).endswith("train"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(DataError, match="cannot list the day files: permission denied"):
        malt.prepare(data)


DAMAGES = {
    "truncated": lambda text: text[:len(text) // 2],
    "garbage": lambda text: bytes(range(255, 55, -1)),
    "a list": lambda text: b"[1, 2]",
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("file, argv", [
    ("config.json", ["eval", "--run", "{run}"]),
    ("metrics.json", ["eval", "--run", "{run}"]),
    ("schema.json", ["predict", "--run", "{run}", "--data", "{data}", "--out", "{out}"]),
    ("config.json", ["export", "--run", "{run}", "--format", "torchscript", "--out", "{out}"]),
])
def test_a_damaged_run_file(trained, tmp_path, capsys, damage, file, argv):
    data, original = trained
    run = shutil.copytree(original, tmp_path / "run")
    path = run / file
    path.write_bytes(DAMAGES[damage](path.read_bytes()))
    out = tmp_path / "out"
    err = refused(capsys, *(a.format(run=run, data=data, out=out) for a in argv))
    assert f"run file {path}" in err and "train the run again" in err
    assert not out.exists()


def test_the_api_refuses_a_damaged_run_with_a_config_error(trained, tmp_path):
    run = shutil.copytree(trained[1], tmp_path / "run")
    (run / "metrics.json").write_text('{"main": "last", ')
    with pytest.raises(ConfigError, match="metrics.json is not valid"):
        malt.load_run(run)


def test_the_api_words_an_operating_system_error_it_meets(trained, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "runs" / "x"))

    monkeypatch.setattr(malt.api, "train_run", refuse)
    with pytest.raises(ConfigError, match="runs/x: permission denied") as info:
        malt.train({"data": {"path": str(trained[0])}}, tmp_path / "runs" / "x")
    assert isinstance(info.value.__cause__, PermissionError)


def test_the_command_line_words_an_operating_system_error_it_meets(monkeypatch, tmp_path,
                                                                   capsys):
    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "big.bin"))

    monkeypatch.setattr("malt.sources.simulate.simulate", refuse)
    err = refused(capsys, "simulate", "--size", "tiny", "--out", str(tmp_path / "sim"))
    assert f"malt simulate: error: {tmp_path / 'big.bin'}: no space left" in err


@pytest.mark.parametrize("damage", [b"{\"data\": 1,", b"\xff\xfe", b"[1, 2]", b"\x00garbage"])
def test_a_damaged_study_record_is_named_and_replaced_only_with_overwrite(tmp_path, damage):
    from malt.experiments.study import claim_output

    out, data = tmp_path / "demo", tmp_path / "data"
    claim_output(out, data)
    (out / "study.json").write_bytes(damage)
    with pytest.raises(ConfigError, match=r"study\.json"):
        claim_output(out, data)
    assert (out / "study.json").read_bytes() == damage
    claim_output(out, data, overwrite=True)
    claim_output(out, data)  # the record is whole again
