"""One writer per output: a second writer is refused (or waits) naming the holder; the lock of
a dead process is taken over."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import stat
import sys
import threading

import pytest

from malt import locks
from malt.errors import ConfigError
from malt.locks import describe_holder, held_by, lock_beside, lock_inside, output_lock
from support.lock_holder import held_elsewhere, start_holder


def test_lock_files_lie_inside_a_directory_or_beside_a_file(tmp_path):
    assert lock_inside(tmp_path / "run") == tmp_path / "run" / ".malt-lock"
    assert lock_beside(tmp_path / "p.parquet") == tmp_path / ".p.parquet.malt-lock"
    assert locks.LOCK_FILE.fullmatch(".malt-lock")
    assert locks.LOCK_FILE.fullmatch(".p.parquet.malt-lock")
    assert not locks.LOCK_FILE.fullmatch("malt-lock")


def test_the_lock_file_names_its_holder(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/malt", "train", "--out", "r"])
    lock = lock_inside(tmp_path)
    with output_lock(lock, tmp_path):
        record = json.loads(lock.read_text())
        assert record.keys() == {"pid", "host", "command", "started"}
        assert (record["pid"], record["host"], record["command"]) == (
            os.getpid(), socket.gethostname(), "malt train --out r")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", record["started"])
        assert stat.S_IMODE(lock.stat().st_mode) & 0o111 == 0  # a plain file, not a program
        # Another descriptor of this process meets the lock as any process would.
        assert held_by(lock) == (f"process {os.getpid()} on host {socket.gethostname()} "
                                 f"(malt train --out r, since {record['started']})")
        with pytest.raises(ConfigError) as error, output_lock(lock, tmp_path):
            pytest.fail("the block must not run")
        assert str(error.value) == (f"{tmp_path} is being written by {held_by(lock)}; wait "
                                    "until it ends, or write to another output")
    monkeypatch.setattr(sys, "argv", [])
    with output_lock(lock, tmp_path):
        assert json.loads(lock.read_text())["command"] == ""


def test_a_holder_that_has_not_said_who_it_is_is_still_refused(tmp_path):
    lock = lock_inside(tmp_path)
    unknown = "another process (it has not said which yet)"
    with output_lock(lock, tmp_path):
        lock.write_bytes(b"\xff\xfe not a record")
        assert held_by(lock) == unknown
        with pytest.raises(ConfigError, match=re.escape(f"being written by {unknown};")), \
                output_lock(lock, tmp_path):
            pytest.fail("the block must not run")
    assert describe_holder("") == describe_holder('{"pid": 1}') == unknown


def test_a_link_is_never_taken_for_a_lock(tmp_path):
    lock = lock_inside(tmp_path)
    link = tmp_path / ".other.malt-lock"
    link.symlink_to(lock)
    with output_lock(lock, tmp_path):
        assert held_by(lock) is not None and held_by(link) is None
    with pytest.raises(ConfigError, match="cannot create the lock file"), \
            output_lock(link, tmp_path):
        pytest.fail("the block must not run")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    lock, out = lock_beside(tmp_path / "out"), tmp_path / "out"
    with held_elsewhere(lock, out) as pid:
        assert held_by(lock).startswith(f"process {pid} on host {socket.gethostname()}")
        with pytest.raises(ConfigError, match=rf"{out} is being written by process {pid} on "
                                              rf"host .+ \(.*-c .*, since \d{{4}}-\d\d-\d\d "):
            with output_lock(lock, out):
                pytest.fail("the block must not run")
    assert held_by(lock) is None and not lock.exists()
    with output_lock(lock, out):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    lock, out = lock_inside(tmp_path), tmp_path
    child = start_holder(lock, out)
    child.kill()
    child.wait()
    assert json.loads(lock.read_text())["pid"] == child.pid  # left behind, held by no one
    assert held_by(lock) is None
    with output_lock(lock, out):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_the_lock_is_released_when_the_block_fails(tmp_path):
    lock = lock_beside(tmp_path / "out")
    with pytest.raises(RuntimeError), output_lock(lock, tmp_path / "out"):
        raise RuntimeError("failed")
    assert not lock.exists()
    with output_lock(lock, tmp_path / "out"):
        pass


def test_a_waiting_writer_goes_on_once_the_holder_ends(tmp_path, caplog):
    lock, out = lock_inside(tmp_path), tmp_path
    waiting, entered, failures = threading.Event(), threading.Event(), []

    class Signal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting until it ends" in record.getMessage():
                waiting.set()

    def writer() -> None:
        try:
            with output_lock(lock, out, wait=True):
                # The name leads to the file this writer locked, not the one the holder removed.
                assert json.loads(lock.read_text())["pid"] == os.getpid()
                entered.set()
        except BaseException as error:  # reported to the test's thread
            failures.append(error)
            waiting.set()

    signal = Signal()
    locks.log.addHandler(signal)
    child = start_holder(lock, out)
    thread = threading.Thread(target=writer)
    try:
        thread.start()
        assert waiting.wait(timeout=120) and failures == []
        assert not entered.is_set()  # it cannot have the lock: the holder still runs
    finally:
        child.stdin.close()
        child.wait()
        thread.join()
        locks.log.removeHandler(signal)
    assert entered.is_set() and failures == []
    assert re.fullmatch(rf"{out} is being written by process {child.pid} on host .+; waiting "
                        "until it ends", caplog.messages[0])
    assert not lock.exists()


def test_a_file_system_without_locks_writes_unguarded_and_says_so(tmp_path, monkeypatch, caplog):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    lock = lock_inside(tmp_path)
    with output_lock(lock, tmp_path):
        assert not lock.exists()  # no lock file where there is no lock
        ran = True
    assert ran and not lock.exists()
    assert caplog.messages == [f"cannot lock {lock} (No locks available): another malt process "
                               f"writing {tmp_path} at the same time would not be stopped"]


def test_a_lock_that_cannot_be_created_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot create the lock file .*missing"):
        with output_lock(lock_inside(tmp_path / "missing"), tmp_path / "missing"):
            pytest.fail("the block must not run")
