"""Exceptions raised on bad input. The CLI turns any `MaltError` into a message and exit code 3."""

from __future__ import annotations


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
