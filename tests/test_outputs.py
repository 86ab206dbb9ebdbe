"""Output directories: malt deletes only what its manifests list, and stages whole outputs."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from malt.errors import ConfigError
from malt.locks import lock_beside, lock_inside
from malt.outputs import (
    MANIFEST,
    Manifest,
    OutputDir,
    atomic_write_text,
    foreign_files,
    mark_whole,
    own_files,
    read_manifest,
    recover_siblings,
    single_file_output,
    staged_output,
    temporary_path,
)
from support.lock_holder import held_elsewhere


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


# --- what is not malt's: symbolic links and directories it did not make ---------------------------
def _finished_run(path: Path) -> OutputDir:
    out = OutputDir(path, "run")
    out.claim()
    for name in ("checkpoint.pt", "config.json", "tb/events.out.tfevents.1"):
        atomic_write_text(out.writable(name), "x")
    return out


@pytest.mark.parametrize("link", ["to a directory", "to a file", "dangling", "inside tb"])
def test_a_symbolic_link_in_an_output_is_foreign_and_nothing_is_removed(tmp_path, link):
    out = _finished_run(tmp_path / "run")
    target = tmp_path / "mine"
    target.mkdir()
    (target / "data.txt").write_text("keep me")
    name = {"to a directory": "a-link", "to a file": "a-link", "dangling": "a-link",
            "inside tb": "tb/a-link"}[link]
    pointee = {"to a directory": target, "to a file": target / "data.txt",
               "dangling": tmp_path / "gone", "inside tb": target}[link]
    (out.path / name).symlink_to(pointee)
    before = _files(out.path)
    assert foreign_files(out.path) == [out.path / name]
    with pytest.raises(ConfigError, match=f"malt did not write \\({name}\\)"):
        out.claim(overwrite=True)
    assert _files(out.path) == before and (out.path / name).is_symlink()
    assert (target / "data.txt").read_text() == "keep me"


def test_a_link_in_place_of_a_file_malt_wrote_is_foreign(tmp_path):
    out = _finished_run(tmp_path / "run")
    (tmp_path / "mine.json").write_text("keep me")
    (out.path / "config.json").unlink()
    (out.path / "config.json").symlink_to(tmp_path / "mine.json")
    assert foreign_files(out.path) == [out.path / "config.json"]
    with pytest.raises(ConfigError, match="config.json"):
        out.claim(overwrite=True)
    assert (out.path / "config.json").is_symlink() and (out.path / "checkpoint.pt").is_file()


def test_an_empty_directory_the_user_made_is_foreign(tmp_path):
    out = _finished_run(tmp_path / "run")
    (out.path / "mine").mkdir()
    (out.path / "tb" / "mine").mkdir()
    before = _files(out.path)
    assert foreign_files(out.path) == [out.path / "mine", out.path / "tb" / "mine"]
    with pytest.raises(ConfigError, match="mine"):
        out.claim(overwrite=True)
    assert _files(out.path) == before
    assert (out.path / "mine").is_dir() and (out.path / "tb" / "mine").is_dir()
    (out.path / "mine").rmdir()
    (out.path / "tb" / "mine").rmdir()
    out.claim(overwrite=True)  # tb/ is malt's: its manifest names files in it
    assert _files(out.path) == {MANIFEST}


def test_directories_a_staged_output_leaves_empty_are_its_own(tmp_path):
    out = tmp_path / "data"
    with staged_output(out, "data") as stage:
        (stage / "vocabs").mkdir()
        (stage / "train").mkdir()
        (stage / "train" / "train-00.parquet").write_text("day")
    assert read_manifest(out).entries == ("train/train-00.parquet", "vocabs")
    assert foreign_files(out) == []
    (out / "vocabs" / "mine").mkdir()
    assert foreign_files(out) == [out / "vocabs" / "mine"]


def test_a_directory_holding_only_a_link_is_not_empty(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "link").symlink_to(tmp_path / "gone")
    assert not OutputDir(out, "run").is_empty()
    with pytest.raises(ConfigError, match="not a malt output.*link"):
        OutputDir(out, "run").claim()


# --- one writer per output ------------------------------------------------------------------------
def test_a_directory_is_written_by_one_process_at_a_time(tmp_path):
    out = OutputDir(tmp_path / "runs" / "a", "run")
    out.path.mkdir(parents=True)
    with held_elsewhere(lock_inside(out.path), out.path) as pid:
        with pytest.raises(ConfigError, match=f"being written by process {pid}"):
            with out.writing():
                pytest.fail("the block must not run")
    with out.writing():
        assert out.is_empty() and foreign_files(out.path) == []  # its own lock is not foreign
        out.claim()
        atomic_write_text(out.writable("metrics.json"), "{}")
        assert foreign_files(out.path) == []
        out.claim(overwrite=True)  # keeps the lock it holds
        assert (out.path / ".malt-lock").is_file()
    assert _files(out.path) == {MANIFEST}


def test_a_directory_made_for_the_lock_goes_again_when_nothing_was_written(tmp_path):
    out = OutputDir(tmp_path / "runs" / "a", "run")
    with pytest.raises(RuntimeError), out.writing():
        raise RuntimeError("bad data, found before anything was written")
    assert list(tmp_path.iterdir()) == []


def test_no_lock_is_put_into_a_directory_that_is_not_malts(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a malt output"), \
            OutputDir(tmp_path, "run").writing():
        pytest.fail("the block must not run")
    assert _files(tmp_path) == {"notes.txt"}


def test_an_output_is_not_replaced_while_an_output_inside_it_is_written(tmp_path):
    demo = OutputDir(tmp_path / "demo", "demo")
    demo.claim()
    run = OutputDir(demo.path / "runs" / "base", "run")
    run.claim()
    with held_elsewhere(lock_inside(run.path), run.path) as pid:
        with pytest.raises(ConfigError, match=f"runs/base/.malt-lock by process {pid}"):
            demo.claim(overwrite=True)
        assert (run.path / MANIFEST).is_file()
    demo.claim(overwrite=True)
    assert _files(demo.path) == {MANIFEST}


def test_a_staged_output_is_written_by_one_process_at_a_time(tmp_path):
    out = tmp_path / "data"
    with held_elsewhere(lock_beside(out), out) as pid:
        with pytest.raises(ConfigError, match=f"being written by process {pid}"), \
                staged_output(out, "data"):
            pytest.fail("the block must not run")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with staged_output(out, "data") as stage:
        assert lock_beside(out).is_file()
        (stage / "v1").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# --- caches ---------------------------------------------------------------------------------------
def test_a_cache_is_made_in_an_absent_or_empty_directory_only(tmp_path):
    mark_whole(tmp_path / "new" / "cache", "cache")
    assert read_manifest(tmp_path / "new" / "cache").entries == ("**",)
    (tmp_path / "empty").mkdir()
    mark_whole(tmp_path / "empty", "cache")
    mark_whole(tmp_path / "empty", "cache")  # already one
    assert read_manifest(tmp_path / "empty").kind == "cache"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="mine is not empty and is not a malt output.*notes"):
        mark_whole(mine, "cache")
    assert _files(mine) == {"notes.txt"}
    with pytest.raises(ConfigError, match="holds a malt run, not a cache"):
        mark_whole(_finished_run(tmp_path / "run").path, "cache")
    mark_whole(mine, "cache", adopt=True)  # malt's by its name
    assert read_manifest(mine).kind == "cache"


# --- single files ---------------------------------------------------------------------------------
def _ours(path: Path) -> bool:
    return path.read_text().startswith("malt")


def test_a_single_file_is_replaced_only_with_overwrite_and_only_when_malt_wrote_it(tmp_path):
    out, sidecar = tmp_path / "m.onnx", tmp_path / "m.onnx.json"
    with single_file_output({out: _ours, sidecar: _ours}):
        atomic_write_text(out, "malt 1")
        atomic_write_text(sidecar, "malt 1")
    with pytest.raises(ConfigError, match="m.onnx exists; pass --overwrite"), \
            single_file_output({out: _ours, sidecar: _ours}):
        pytest.fail("the block must not run")
    with single_file_output({out: _ours, sidecar: _ours}, overwrite=True):
        assert lock_beside(out).is_file()
    sidecar.write_text("mine")
    with pytest.raises(ConfigError, match="m.onnx.json was not written by malt"), \
            single_file_output({out: _ours, sidecar: _ours}, overwrite=True):
        pytest.fail("the block must not run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]


@pytest.mark.parametrize("kind", ["directory", "link"])
def test_a_single_file_output_that_is_a_directory_or_a_link_is_refused(tmp_path, kind):
    out = tmp_path / "p.parquet"
    if kind == "directory":
        out.mkdir()
    else:
        (tmp_path / "real.parquet").write_text("malt")
        out.symlink_to(tmp_path / "real.parquet")
    with pytest.raises(ConfigError, match="is a directory" if kind == "directory" else
                       "is a symbolic link"), \
            single_file_output({out: _ours}, overwrite=True):
        pytest.fail("the block must not run")


def test_a_single_file_is_written_by_one_process_at_a_time(tmp_path):
    out = tmp_path / "p.parquet"
    with held_elsewhere(lock_beside(out), out) as pid:
        with pytest.raises(ConfigError, match=f"p.parquet is being written by process {pid}"), \
                single_file_output({out: _ours}):
            pytest.fail("the block must not run")


# --- details the checks above rely on -------------------------------------------------------------
def test_a_file_is_written_into_directories_made_for_it(tmp_path):
    atomic_write_text(tmp_path / "a" / "b" / "c.json", "{}")
    assert _files(tmp_path) == {"a/b/c.json"}


def test_temporaries_of_listed_files_in_subdirectories_are_malts(tmp_path):
    out = OutputDir(tmp_path, "run")
    out.claim()
    out.record("tb/events.1")
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / ".events.1.tmp-host-12").write_text("x")
    (tmp_path / "tb" / ".other.tmp-host-12").write_text("x")
    assert foreign_files(tmp_path) == [tmp_path / "tb" / ".other.tmp-host-12"]


def test_a_directory_on_the_way_to_a_recorded_file_is_malts_while_empty(tmp_path):
    out = OutputDir(tmp_path, "study")
    out.claim()
    out.record("runs/x/metrics.json", "tb/events.out.tfevents.*")
    (tmp_path / "runs").mkdir()  # made before the file it will hold
    (tmp_path / "tb").mkdir()
    assert foreign_files(tmp_path) == []
    (tmp_path / "runs" / "y").mkdir()
    assert foreign_files(tmp_path) == [tmp_path / "runs" / "y"]


def test_a_lock_file_does_not_hide_what_lies_beside_it(tmp_path):
    out = _finished_run(tmp_path / "run")
    with out.writing():
        (out.path / "notes.txt").write_text("mine")
        assert foreign_files(out.path) == [out.path / "notes.txt"]


def test_an_output_named_through_a_link_is_checked_where_the_link_leads(tmp_path):
    out = _finished_run(tmp_path / "real")
    (out.path / "notes.txt").write_text("mine")
    (tmp_path / "link").symlink_to(out.path)
    with pytest.raises(ConfigError, match="notes.txt"):
        OutputDir(tmp_path / "link", "run").claim(overwrite=True)
    assert (out.path / "notes.txt").read_text() == "mine" and (out.path / "config.json").exists()


@pytest.mark.parametrize("count, listed", [(5, "f0, f1, f2, f3, f4"),
                                           (6, "f0, f1, f2, f3, f4 and 1 more"),
                                           (8, "f0, f1, f2, f3, f4 and 3 more")])
def test_a_refusal_lists_the_first_five_paths(tmp_path, count, listed):
    for i in range(count):
        (tmp_path / f"f{i}").write_text("x")
    with pytest.raises(ConfigError) as error:
        OutputDir(tmp_path, "run").claim()
    assert str(error.value) == (f"{tmp_path} is not empty and is not a malt output (it holds "
                                f"{listed}); choose another directory")


def test_a_directory_holding_only_directories_of_lock_files_is_named_by_them(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".malt-lock").write_text("")
    with pytest.raises(ConfigError, match=r"not a malt output \(it holds sub\)"):
        OutputDir(tmp_path, "run").claim()


def test_every_refusal_says_what_to_do(tmp_path):
    out = _finished_run(tmp_path / "run")
    messages = {}
    for name, attempt in {
        "not a directory": lambda: OutputDir(out.path / "config.json", "run").claim(),
        "other kind": lambda: OutputDir(out.path, "study").claim(),
        "exists": lambda: out.check_writable(),
        "exists, claimed": lambda: out.claim(),
    }.items():
        with pytest.raises(ConfigError) as error:
            attempt()
        messages[name] = str(error.value)
    assert messages == {
        "not a directory": f"{out.path / 'config.json'} exists and is not a directory",
        "other kind": f"{out.path} holds a malt run, not a study; choose another directory",
        "exists": f"{out.path} already holds a malt run; pass --overwrite to replace it",
        "exists, claimed": f"{out.path} already holds a malt run; pass --overwrite to replace it",
    }
    (out.path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError) as error:
        out.claim(overwrite=True)
    assert str(error.value) == (f"{out.path} holds files malt did not write (notes.txt); malt "
                                "deletes only its own files: move them away or choose another "
                                "directory")


def test_a_replaced_output_keeps_its_kind(tmp_path):
    out = _finished_run(tmp_path / "run")
    out.claim(overwrite=True)
    assert read_manifest(out.path) == Manifest("run", ())
    fresh = OutputDir(tmp_path / "fresh", "study")
    fresh.path.mkdir()
    fresh.record("a.md")
    assert read_manifest(fresh.path) == Manifest("study", ("a.md",))


def test_every_output_being_written_inside_is_named(tmp_path):
    demo = OutputDir(tmp_path / "demo", "demo")
    demo.claim()
    runs = [OutputDir(demo.path / "runs" / name, "run") for name in ("a", "b")]
    for run in runs:
        run.claim()
    with held_elsewhere(lock_inside(runs[0].path), runs[0].path) as first, \
            held_elsewhere(lock_inside(runs[1].path), runs[1].path) as second:
        with pytest.raises(ConfigError) as error:
            demo.claim(overwrite=True)
    assert re.fullmatch(
        rf"{demo.path} holds outputs being written \(runs/a/.malt-lock by process {first} "
        rf"[^;]+, runs/b/.malt-lock by process {second} [^;]+\); wait until they end",
        str(error.value))


def test_a_single_file_refusal_says_what_to_do(tmp_path):
    out = tmp_path / "p.parquet"
    out.write_text("mine")
    with pytest.raises(ConfigError) as error, single_file_output({out: _ours}, overwrite=True):
        pytest.fail("the block must not run")
    assert str(error.value) == (f"{out} was not written by malt; --overwrite replaces only files "
                                "malt wrote: move it away or choose another --out")


def test_leftovers_of_live_writers_are_left_alone(tmp_path):
    out = tmp_path / "data"
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    dead = _dead_pid()
    try:
        for role, pid in (("old", live.pid), ("staging", dead)):  # the live one sorts first
            sibling = tmp_path / f".data.malt-{role}-{pid}"
            sibling.mkdir()
            (sibling / MANIFEST).write_text('{"kind": "data", "entries": []}')
        recover_siblings(out)
        assert live.poll() is None  # only asked whether it lives
    finally:
        live.stdin.close()
        live.wait()
    # A dead writer's staging directory is removed, never taken for the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".data.malt-old-{live.pid}"]
