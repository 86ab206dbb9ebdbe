"""Exceptions raised on bad input. The CLI turns any `MaltError` into a message and exit code 3.

Errors of the operating system (a file that cannot be read or written: permissions, a full
disk, a missing or misplaced file) become `MaltError`s where malt first meets them, with
`file_error` or `os_errors_as`, naming the path and what to do; `describe_os_error` words one
for the CLI's last line of defence.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager


class MaltError(Exception):
    """Base class for errors the user can fix (bad data, bad config, bad flags)."""


class ConfigError(MaltError):
    """A configuration value or file is invalid."""


class DataError(MaltError):
    """A data file breaks the schema. Names the file, the column and the first offending row."""

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None,
                 row: int | None = None):
        self.file, self.column, self.row = file, column, row
        where = []
        if file is not None:
            where.append(f"file {file}")
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C); the checkpoint holds everything needed to resume.
    Not a `MaltError`: nothing is wrong with the input."""


_REASONS = {
    errno.EACCES: "permission denied: give this user access to it (and to the directories "
                  "above it) or use another path",
    errno.ENOSPC: "no space left on the device: free some space or write somewhere else",
    errno.EDQUOT: "disk quota exceeded: free some space or write somewhere else",
    errno.EFBIG: "file too large for the file system or for this process's file size limit "
                 "(ulimit -f): free space, raise the limit or write somewhere else",
    errno.EROFS: "read-only file system: write somewhere else",
    errno.ENOENT: "no such file or directory (or a symbolic link to nothing)",
    errno.EISDIR: "is a directory, where a file is expected",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.ELOOP: "too many levels of symbolic links (a link pointing to itself?)",
    errno.EIO: "input/output error: the disk or network file system failed; check it and try "
               "again",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.ENAMETOOLONG: "file name too long",
}
_REASONS[errno.EPERM] = _REASONS[errno.EACCES]


def os_error_reason(exc: OSError) -> str:
    """What the operating system refused, in words, with what to do about it."""
    reason = _REASONS.get(exc.errno)
    if reason is not None:
        return reason
    return exc.strerror or str(exc) or type(exc).__name__


def describe_os_error(exc: OSError) -> str:
    """`<path>: <reason>` for an error that names its path, else the reason and the error's
    own words (pyarrow's errors name their files only in their text)."""
    if exc.filename is None:
        reason = os_error_reason(exc)
        return reason if str(exc) in reason else f"{reason} ({exc})"
    where = os.fsdecode(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {os.fsdecode(exc.filename2)}"
    return f"{where}: {os_error_reason(exc)}"


def file_error(exc: OSError, path: str | os.PathLike, *, action: str = "read",
               error: type[MaltError] = ConfigError) -> MaltError:
    """`exc`, met trying to `action` (a verb: "read", "write", "read the schema file") `path`,
    as an `error` (`ConfigError` or `DataError`) naming `path`, or the file the error names when
    that one lies inside `path`."""
    path = os.fspath(path)
    if exc.filename is not None and os.fsdecode(exc.filename) != path \
            and os.fsdecode(exc.filename).startswith(path.rstrip(os.sep) + os.sep):
        path = os.fsdecode(exc.filename)
    if error is DataError:
        return DataError(f"cannot {action}: {os_error_reason(exc)}", file=path)
    return error(f"cannot {action} {path}: {os_error_reason(exc)}")


@contextmanager
def os_errors_as(path: str | os.PathLike, *, action: str = "read",
                 error: type[MaltError] = ConfigError) -> Iterator[None]:
    """Raise an operating-system error of the block as `file_error(exc, path, ...)`."""
    try:
        yield
    except OSError as exc:
        raise file_error(exc, path, action=action, error=error) from exc
