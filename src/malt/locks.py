"""One writer per output: a lock file held for as long as a command writes an output.

A directory written in place (a run, a study, a cache) holds its lock inside it,
`<dir>/.malt-lock`; an output replaced whole (a data set, a prediction or export file) holds it
beside it, `.<name>.malt-lock`, since the output itself is renamed into place. The lock is an
`flock` on that file, which the kernel releases when its process ends however it ends, so a lock
file left by a killed process is simply taken over. The file names its holder (process id,
host, command, start time) for the message a second writer gets.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from malt.errors import ConfigError, os_error_reason

log = logging.getLogger(__name__)

LOCK_NAME = ".malt-lock"
"""The lock of a directory written in place, inside it."""
LOCK_FILE = re.compile(r"(?:\.(?P<name>.+))?\.malt-lock")
"""Names of lock files: `.malt-lock` inside an output, `.<name>.malt-lock` beside one."""
_CONTENDED = {errno.EAGAIN, errno.EACCES}
_HOLDER_BYTES = 4096


def lock_inside(directory: Path) -> Path:
    """The lock file of a directory malt writes in place."""
    return Path(directory) / LOCK_NAME


def lock_beside(path: Path) -> Path:
    """The lock file of an output that is renamed into place (a data set, a single file)."""
    path = Path(path)
    return path.with_name(f".{path.name}.malt-lock")


def holder() -> dict[str, object]:
    """Who this process is, as a lock file records it."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]) if sys.argv
            else "", "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def describe_holder(text: str) -> str:
    """A lock file's record as a phrase: `process 12 on host h (malt train ..., since ...)`."""
    try:
        record = json.loads(text)
        return (f"process {record['pid']} on host {record['host']} ({record['command']}, "
                f"since {record['started']})")
    except (ValueError, KeyError, TypeError):
        return "another process (it has not said which yet)"


@contextmanager
def output_lock(lock_file: Path, output: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the lock `lock_file` of `output` while the block runs.

    When another process holds it: a `ConfigError` naming that process, or with `wait` a
    warning and a wait for its end (outputs several processes share, such as a cache). The lock
    file is removed on release.
    """
    lock_file = Path(lock_file)
    fd = _acquire(lock_file, output, wait)
    if fd is None:  # the file system cannot lock: write as before, unguarded
        yield
        return
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder(), allow_nan=False).encode(), 0)
        yield
    finally:
        # Removed while still held: a process that opened it meanwhile finds, once it gets the
        # lock, that the name no longer leads to its file, and starts again on a new one.
        lock_file.unlink(missing_ok=True)
        os.close(fd)


def held_by(lock_file: Path) -> str | None:
    """The process that holds `lock_file` (see `describe_holder`), or None when none does."""
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in _CONTENDED:
            return describe_holder(os.pread(fd, _HOLDER_BYTES, 0).decode(errors="replace"))
        return None
    finally:
        os.close(fd)
    return None


def _acquire(lock_file: Path, output: Path, wait: bool) -> int | None:
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise ConfigError(f"cannot create the lock file {lock_file} of {output}: "
                              f"{os_error_reason(error)}") from error
        try:
            if not _locked(fd, lock_file, output, wait):
                os.close(fd)
                lock_file.unlink(missing_ok=True)
                return None
            if _names_file(lock_file, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _locked(fd: int, lock_file: Path, output: Path, wait: bool) -> bool:
    """Take the lock on `fd`: True when taken, False when the file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as error:
        if error.errno not in _CONTENDED:
            log.warning("cannot lock %s (%s): another malt process writing %s at the same time "
                        "would not be stopped", lock_file, error.strerror, output)
            return False
    who = describe_holder(os.pread(fd, _HOLDER_BYTES, 0).decode(errors="replace"))
    if not wait:
        raise ConfigError(f"{output} is being written by {who}; wait until it ends, or write "
                          "to another output")
    log.warning("%s is being written by %s; waiting until it ends", output, who)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return True


def _names_file(lock_file: Path, fd: int) -> bool:
    """Whether `lock_file` still names the file open as `fd` (its holder may have removed it)."""
    try:
        on_disk = os.stat(lock_file, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)
