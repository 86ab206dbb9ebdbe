"""What the operating system refuses (permissions, a full disk) ends a command with exit 3, a
message naming the path and what to do, and never a traceback; outputs are left whole or
absent.

The commands run in subprocesses: one held to file permissions (as root, which CI and the
development machines are, without the capabilities that override them), or one whose file size
is limited (RLIMIT_FSIZE, SIGXFSZ ignored: a write past the limit fails with EFBIG, as on a full
disk).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from malt.data import prepare
from malt.data.layout import day_path
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS

pytestmark = pytest.mark.slow

_HELD_TO_PERMISSIONS = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        raise OSError(ctypes.get_errno(), "cannot drop a capability")
"""
# Dropped from the bounding set, the capabilities leave this process's effective set only at an
# exec: the command runs in a fresh interpreter.
_THEN_EXEC = """
import os, sys
os.execv(sys.argv[1], sys.argv[1:])
"""
_FILE_SIZE_LIMIT = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
"""


def malt(*args, held_to_permissions: bool = False, file_size: int | None = None
         ) -> subprocess.CompletedProcess:
    """`malt args` in a subprocess, held to file permissions and/or with a file size limit."""
    setup = ""
    if held_to_permissions and os.geteuid() == 0:
        setup += _HELD_TO_PERMISSIONS
    if file_size is not None:
        setup += _FILE_SIZE_LIMIT.format(limit=file_size)
    return subprocess.run([sys.executable, "-c", setup + _THEN_EXEC, sys.executable, "-m",
                           "malt", *map(str, args)], capture_output=True, text=True, timeout=300)


def refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """The error line of a command that ended with exit 3; it holds each of `words`."""
    assert result.returncode == 3, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in line
    return line


@pytest.fixture(scope="module")
def permissions_hold(tmp_path_factory):
    """Skips when file permissions cannot be enforced on the subprocesses here."""
    secret = tmp_path_factory.mktemp("probe") / "secret"
    secret.write_text("x")
    secret.chmod(0)
    setup = _HELD_TO_PERMISSIONS if os.geteuid() == 0 else ""
    probe = subprocess.run([sys.executable, "-c", setup + _THEN_EXEC, sys.executable, "-c",
                            f"open({str(secret)!r})"], capture_output=True, text=True)
    if "PermissionError" not in probe.stderr:
        pytest.skip(f"file permissions cannot be enforced here: {probe.stderr[-300:]}")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(data, run): a small prepared data set and a finished BASE run on it."""
    root = tmp_path_factory.mktemp("os-errors")
    data = write_random_dataset(root / "data", days=3, rows=200)
    prepare(data)
    config = RunConfig.from_dict({"seed": 1, "data": {"path": str(data)},
                                  "task": {"main": "last"}, "train": {"batch_size": 64},
                                  "model": {"name": "base", **SMALL_BLOCKS}})
    train_run(config, root / "run")
    return data, root / "run"


@pytest.fixture
def data(world, tmp_path):
    return shutil.copytree(world[0], tmp_path / "data", symlinks=True)


@pytest.fixture
def run(world, tmp_path):
    return shutil.copytree(world[1], tmp_path / "run")


@pytest.fixture
def read_only(tmp_path):
    """A directory nothing can be written into."""
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    yield path
    path.chmod(0o755)


def unreadable(path: Path) -> Path:
    path.chmod(0)
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


PERMISSION = "permission denied: give this user access"


@pytest.mark.parametrize("what, words", [("day file", "cannot read"),
                                         ("day directory", "cannot list the day files"),
                                         ("vocab", "cannot read")])
def test_unreadable_data(permissions_hold, data, tmp_path, what, words):
    path = {"day file": day_path(data, "train", 0), "day directory": data / "train",
            "vocab": data / "vocabs" / "user_id.json"}[what]
    unreadable(path)
    refused(malt("prepare", "--data", data, "--cache", tmp_path / "cache", "--rebuild",
                 held_to_permissions=True), f"file {path}: {words}: {PERMISSION}")
    path.chmod(0o755)


@pytest.mark.parametrize("what", ["file to score", "vocab"])
def test_unreadable_input_of_predict(permissions_hold, data, run, tmp_path, what):
    path = unreadable(day_path(data, "test", 0) if what == "file to score"
                      else data / "vocabs" / "ad_feat0.json")
    refused(malt("predict", "--run", run, "--data", day_path(data, "test", 0), "--vocabs", data,
                 "--out", tmp_path / "out.parquet", held_to_permissions=True),
            f"file {path}: cannot read: {PERMISSION}")


def test_an_unreadable_schema(permissions_hold, data, tmp_path):
    schema = tmp_path / "schema.toml"
    schema.write_text('name = "x"')
    refused(malt("prepare", "--data", data, "--schema", unreadable(schema),
                 held_to_permissions=True), f"cannot read the schema file {schema}", PERMISSION)


@pytest.mark.parametrize("file, argv", [
    ("config.json", ["eval", "--run", "{run}"]),
    ("metrics.json", ["eval", "--run", "{run}"]),
    ("checkpoint.safetensors",
     ["predict", "--run", "{run}", "--data", "{data}", "--out", "{out}"]),
    ("schema.json", ["export", "--run", "{run}", "--format", "torchscript", "--out", "{out}"]),
])
def test_an_unreadable_run_file(permissions_hold, data, run, tmp_path, file, argv):
    unreadable(run / file)
    out = tmp_path / "out"
    line = refused(malt(*(a.format(run=run, data=data, out=out) for a in argv),
                        held_to_permissions=True), str(run / file), PERMISSION)
    assert "train the run again" not in line  # the file is fine, its permissions are not
    assert not out.exists()


def test_a_run_directory_that_cannot_be_written(permissions_hold, data, run):
    before = tree(run)
    run.chmod(0o555)
    refused(malt("train", "--data", data, "--model", "base", "--out", run, "--overwrite",
                 held_to_permissions=True), str(run), PERMISSION)
    run.chmod(0o755)
    assert tree(run) == before


@pytest.mark.parametrize("argv, written", [
    (["simulate", "--size", "tiny", "--users", "200", "--days", "3", "--out", "{out}"], "{out}"),
    (["train", "--data", "{data}", "--model", "base", "--out", "{out}"], "{out}"),
    (["prepare", "--data", "{data}", "--cache", "{out}"], "{out}"),
    (["predict", "--run", "{run}", "--data", "{data}", "--out", "{out}.parquet"],
     "{out}.parquet"),
    (["export", "--run", "{run}", "--format", "torchscript", "--out", "{out}.pt"], "{out}.pt"),
])
def test_an_output_that_cannot_be_written(permissions_hold, data, run, read_only, argv, written):
    names = {"data": data, "run": run, "out": read_only / "out"}
    # Its lock, made first, is what the system refuses (for a directory made in place, the
    # directory itself).
    refused(malt(*(a.format(**names) for a in argv), held_to_permissions=True),
            f"{written.format(**names)}", PERMISSION)
    assert list(read_only.iterdir()) == []


FULL = "file too large for the file system or for this process's file size limit"


def test_simulate_on_a_full_disk(tmp_path):
    out = tmp_path / "sim"
    refused(malt("simulate", "--size", "tiny", "--users", "300", "--days", "3", "--out", out,
                 file_size=20_000), FULL, "cannot write")
    assert list(tmp_path.iterdir()) == []  # neither the data set nor its staging copy


def test_prepare_on_a_full_disk(data, tmp_path):
    cache = tmp_path / "cache"
    refused(malt("prepare", "--data", data, "--cache", cache, file_size=3_000),
            f"cannot write {cache}", FULL)
    assert not [p for p in cache.iterdir() if p.is_dir()]  # no day cached in part


def test_train_on_a_full_disk(world, tmp_path):
    out = tmp_path / "run"
    refused(malt("train", "--data", world[0], "--model", "base", "--out", out, file_size=1_000),
            f"cannot write {out}", FULL)
    assert not (out / "metrics.json").exists()


def test_predict_on_a_full_disk(data, run, tmp_path):
    out = tmp_path / "scores.parquet"
    refused(malt("predict", "--run", run, "--data", data, "--out", out, file_size=1_000),
            f"cannot write {out}", FULL)
    assert list(tmp_path.glob("*scores*")) == []


def test_a_checkpoint_on_a_full_disk(world, tmp_path):
    out = tmp_path / "run"
    # config.json, schema.json and the log fit; the checkpoint (tens of kB) does not.
    refused(malt("train", "--data", world[0], "--model", "base", "--out", out,
                 file_size=20_000),
            f"{out / 'checkpoint.safetensors'}", FULL)


def test_overwrite_checks_every_directory_it_would_clear_before_removing_anything(
        permissions_hold, data, run):
    before = tree(run)
    (run / "tb").chmod(0o555)  # its files cannot be removed
    refused(malt("train", "--data", data, "--model", "base", "--out", run, "--overwrite",
                 held_to_permissions=True), str(run / "tb"), PERMISSION)
    (run / "tb").chmod(0o755)
    assert tree(run) == before
