"""Output directories: malt deletes only what its manifests list, and stages whole outputs."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from malt.errors import ConfigError
from malt.outputs import (
    MANIFEST,
    OutputDir,
    atomic_write_text,
    foreign_files,
    own_files,
    read_manifest,
    recover_siblings,
    staged_output,
    temporary_path,
)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_claim_creates_the_directory_with_its_manifest(tmp_path):
    out = OutputDir(tmp_path / "a" / "run", "run")
    out.claim()
    assert read_manifest(out.path).kind == "run" and out.is_ours()
    atomic_write_text(out.writable("metrics.json"), "{}")
    assert read_manifest(out.path).entries == ("metrics.json",)
    assert foreign_files(out.path) == []


@pytest.mark.parametrize("given", ["name", "relative", "absolute"])
def test_a_directory_named_relative_to_the_working_directory_writes_inside_itself(
        tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    out = OutputDir(Path("runs") / "x", "run")
    out.claim()
    path = {"name": Path("metrics.json"), "relative": out.path / "metrics.json",
            "absolute": tmp_path / "runs" / "x" / "metrics.json"}[given]
    target = out.writable(path)
    atomic_write_text(target, "{}")
    assert (tmp_path / "runs" / "x" / "metrics.json").is_file() and target.exists()
    assert read_manifest(out.path).entries == ("metrics.json",)
    assert _files(tmp_path) == {"runs/x/metrics.json", f"runs/x/{MANIFEST}"}


def test_a_temporary_is_named_by_host_and_process(tmp_path):
    # Processes of two machines writing into one shared directory may have the same pid.
    assert temporary_path(tmp_path / "a.json") == \
        tmp_path / f".a.json.tmp-{socket.gethostname()}-{os.getpid()}"


def test_files_malt_did_not_write_are_foreign(tmp_path):
    out = OutputDir(tmp_path, "run")
    out.claim()
    out.record("config.json", "tb/events.out.tfevents.*")
    for name in ("config.json", ".config.json.tmp-123", ".config.json.tmp-node-7.lan-45",
                 "tb/events.out.tfevents.1.host",
                 "notes.txt", "tb/mine.txt", ".other.tmp-1"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    assert {p.relative_to(tmp_path).as_posix() for p in foreign_files(tmp_path)} == {
        "notes.txt", "tb/mine.txt", ".other.tmp-1"}
    assert [p.relative_to(tmp_path).as_posix() for p in own_files(tmp_path)] == [
        "config.json", "tb/events.out.tfevents.1.host"]  # no manifest, no temporary


def test_a_directory_without_manifest_is_all_foreign(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert foreign_files(tmp_path) == [tmp_path / "config.json"]
    with pytest.raises(ConfigError, match="not a malt output.*config.json"):
        OutputDir(tmp_path, "run").claim(overwrite=True)
    assert (tmp_path / "config.json").read_text() == "{}"
    assert not (tmp_path / MANIFEST).exists()


def test_overwrite_removes_malt_files_and_refuses_when_others_are_there(tmp_path):
    out = OutputDir(tmp_path / "run", "run")
    out.claim()
    atomic_write_text(out.writable("metrics.json"), "{}")
    atomic_write_text(out.writable("tb/events.out.tfevents.1"), "e")
    (out.path / "important.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="important.txt"):
        out.claim(overwrite=True)
    assert _files(out.path) == {MANIFEST, "metrics.json", "tb/events.out.tfevents.1",
                                "important.txt"}
    (out.path / "important.txt").unlink()
    out.claim(overwrite=True)
    assert _files(out.path) == {MANIFEST} and read_manifest(out.path).entries == ()


def test_an_existing_output_is_kept_or_refused_without_overwrite(tmp_path):
    out = OutputDir(tmp_path, "study")
    out.claim()
    atomic_write_text(out.writable("main.md"), "table")
    out.claim(keep=True)
    assert (tmp_path / "main.md").read_text() == "table"
    with pytest.raises(ConfigError, match="already holds a malt study; resume"):
        out.claim(hint="resume")
    with pytest.raises(ConfigError, match="holds a malt study, not a run"):
        OutputDir(tmp_path, "run").claim(overwrite=True)


def test_a_nested_output_answers_for_its_own_files(tmp_path):
    study = OutputDir(tmp_path, "study")
    study.claim()
    run = OutputDir(tmp_path / "runs" / "r1", "run")
    run.claim()
    atomic_write_text(run.writable("metrics.json"), "{}")
    (tmp_path / "runs" / "stray.txt").write_text("x")
    (run.path / "mine.txt").write_text("x")
    assert sorted(p.name for p in foreign_files(tmp_path)) == ["mine.txt", "stray.txt"]
    (tmp_path / "runs" / "stray.txt").unlink()
    (run.path / "mine.txt").unlink()
    assert foreign_files(tmp_path) == []
    study.claim(overwrite=True)
    assert _files(tmp_path) == {MANIFEST}


def test_staged_output_appears_whole_and_lists_its_files(tmp_path):
    out = tmp_path / "data"
    with staged_output(out, "data") as stage:
        assert not out.exists() and stage.parent == tmp_path
        (stage / "train").mkdir()
        (stage / "train" / "train-00.parquet").write_text("day")
    assert _files(out) == {MANIFEST, "train/train-00.parquet"}
    assert read_manifest(out).entries == ("train/train-00.parquet",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_failed_staged_output_leaves_the_previous_one(tmp_path):
    out = tmp_path / "data"
    with staged_output(out, "data") as stage:
        (stage / "v1").write_text("1")
    with pytest.raises(RuntimeError), staged_output(out, "data", overwrite=True) as stage:
        (stage / "v2").write_text("2")
        raise RuntimeError("killed")
    assert _files(out) == {MANIFEST, "v1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    with staged_output(out, "data", overwrite=True) as stage:
        (stage / "v2").write_text("2")
    assert _files(out) == {MANIFEST, "v2"}


def test_a_staged_output_checks_before_it_starts(tmp_path):
    out = tmp_path / "data"
    with staged_output(out, "data") as stage:
        (stage / "v1").write_text("1")
    with pytest.raises(ConfigError, match="--overwrite"), staged_output(out, "data"):
        pytest.fail("the block must not run")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="notes.txt"), \
            staged_output(out, "data", overwrite=True):
        pytest.fail("the block must not run")
    assert _files(out) == {MANIFEST, "v1", "notes.txt"}


def test_leftovers_of_dead_writers_are_cleaned_and_a_set_aside_output_restored(tmp_path):
    out = tmp_path / "data"
    with staged_output(out, "data") as stage:
        (stage / "v1").write_text("1")
    pid = _dead_pid()
    staging = tmp_path / f".data.malt-staging-{pid}"
    staging.mkdir()
    (staging / MANIFEST).write_text('{"kind": "data", "entries": []}')
    foreign = tmp_path / f".data.malt-staging-{pid + 1}"
    foreign.mkdir()  # no manifest: not malt's, never touched
    os.replace(out, tmp_path / f".data.malt-old-{pid}")
    recover_siblings(out)
    assert _files(out) == {MANIFEST, "v1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [foreign.name, "data"]
