"""Outputs on the command line: one writer at a time (a second exits 3 naming the holder),
nothing of the user's removed by --overwrite, and names that would leave their directory
refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from malt.cli import main
from malt.errors import ConfigError, DataError
from malt.jobs.train import train_run
from malt.locks import lock_beside, lock_inside
from malt.outputs import MANIFEST
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from support.lock_holder import held_elsewhere
from support.mac_data import write_random_dataset


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every path under `root`: a file's bytes, a link's target, `dir` for a directory."""
    tree: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        tree[key] = (f"-> {path.readlink()}" if path.is_symlink() else
                     "dir" if path.is_dir() else path.read_bytes())
    return tree


def _started_run(path: Path, data: Path) -> RunDir:
    """A run directory as a trainer leaves it mid-run: config and a checkpoint."""
    run = RunDir(path)
    run.claim()
    run.save_config(RunConfig.from_dict({"data": {"path": str(data)}}))
    run.writable(run.checkpoint).write_bytes(b"weights")
    return run


@pytest.mark.parametrize("how", [["--resume"], ["--overwrite", "--data", "DATA"]])
def test_a_second_trainer_of_a_run_exits_3_naming_the_first(tmp_path, capsys, how):
    run = _started_run(tmp_path / "run", tmp_path / "data")
    before = _tree(tmp_path)
    args = ["train", "--out", str(run.path), *(str(tmp_path / "data") if a == "DATA" else a
                                               for a in how)]
    with held_elsewhere(lock_inside(run.path), run.path) as pid:
        assert main(args) == 3
    err = capsys.readouterr().err
    assert f"{run.path} is being written by process {pid} on host " in err
    assert "Traceback" not in err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("rank, refused", [("0", True), ("1", False)])
def test_only_rank_0_of_a_launch_takes_the_runs_lock(tmp_path, monkeypatch, rank, refused):
    out = tmp_path / "run"
    out.mkdir()
    monkeypatch.setenv("RANK", rank)
    config = RunConfig.from_dict({"data": {"path": str(tmp_path / "missing")}})
    with held_elsewhere(lock_inside(out), out):
        # Rank 0 meets the other writer; the other ranks go on to the data (missing here).
        with pytest.raises(ConfigError if refused else DataError,
                           match="being written" if refused else "does not exist"):
            train_run(config, out)


@pytest.mark.parametrize("entry", ["link to a directory", "link to a file", "empty directory"])
def test_overwrite_refuses_a_run_holding_what_malt_did_not_make_and_removes_nothing(
        tmp_path, capsys, entry):
    run = _started_run(tmp_path / "run", tmp_path / "data")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("keep")
    if entry == "link to a directory":
        (run.path / "zz-data").symlink_to(mine)
    elif entry == "link to a file":
        (run.path / "zz-data").symlink_to(mine / "results.csv")
    else:
        (run.path / "zz-data").mkdir()
    before = _tree(tmp_path)
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(run.path),
                 "--overwrite"]) == 3
    assert "zz-data" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_a_run_being_written_is_not_upgraded(tmp_path, capsys):
    run = RunDir(tmp_path / "old")
    run.claim()
    run.writable(run.path / "checkpoint.pt").write_bytes(b"pickle")
    before = _tree(tmp_path)
    with held_elsewhere(lock_inside(run.path), run.path) as pid:
        assert main(["upgrade-run", str(run.path), "--trust-pickle"]) == 3
    assert f"being written by process {pid}" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_a_second_writer_of_a_data_set_exits_3(tmp_path, capsys):
    out = tmp_path / "sim"
    with held_elsewhere(lock_beside(out), out) as pid:
        assert main(["simulate", "--size", "tiny", "--out", str(out)]) == 3
    assert f"being written by process {pid}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_second_study_in_one_directory_exits_3(tmp_path, capsys):
    out = tmp_path / "study"
    out.mkdir()
    with held_elsewhere(lock_inside(out), out) as pid:
        assert main(["study", "main", "--out", str(out)]) == 3
    assert f"being written by process {pid}" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_a_cache_directory_that_is_not_malts_is_refused(tmp_path, capsys):
    data = write_random_dataset(tmp_path / "data", days=2, rows=50)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "notes.txt").write_text("mine")
    assert main(["prepare", "--data", str(data), "--cache", str(cache)]) == 3
    assert "not a malt output (it holds notes.txt)" in capsys.readouterr().err
    assert _tree(cache) == {"notes.txt": b"mine"}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["prepare", "--data", str(data), "--cache", str(empty)]) == 0
    assert json.loads((empty / MANIFEST).read_text()) == {"kind": "cache", "entries": ["**"]}


@pytest.mark.parametrize("field", ["../../../pwned_vocab", "ABSOLUTE"])
def test_a_field_name_that_leaves_the_vocab_directory_exits_3_and_writes_nothing(
        tmp_path, capsys, field):
    field = str(tmp_path / "pwned_abs") if field == "ABSOLUTE" else field
    data = write_random_dataset(tmp_path / "a" / "b" / "data", days=2, rows=50)
    for vocab in (data / "vocabs").iterdir():
        vocab.unlink()
    (data / "schema.toml").write_text(
        f'user_column = "user_id"\nlabels = ["last"]\n[fields]\nad = ["ad_feat0", "{field}"]\n')
    before = _tree(tmp_path)
    assert main(["prepare", "--data", str(data), "--build-vocabs"]) == 3
    err = capsys.readouterr().err
    assert f"fields = {field!r}" in err and "Traceback" not in err
    assert _tree(tmp_path) == before
