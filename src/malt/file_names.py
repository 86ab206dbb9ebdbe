"""Names that become file names must stay inside their directory.

A schema's columns name vocab files (`vocabs/<column>.json`), its labels name plots and metrics
(`reliability-<view>.png`), and a study's cells are named by their model and target. A name such
as `../../x` or `/etc/x` would write (or read) outside the directory, so every such name is
checked where it enters malt (schema, task config, study options) by `check_file_name`.
"""

from __future__ import annotations

from malt.errors import ConfigError

_FORBIDDEN = (("/", "'/'"), ("\\", "'\\'"), ("..", "'..'"), ("\0", "a NUL character"))


def file_name_problem(name: object) -> str | None:
    """Why `name` cannot be one file name inside a directory, or None when it can."""
    if not isinstance(name, str):
        return f"is not text ({type(name).__name__})"
    if not name:
        return "is empty"
    if name.startswith("."):
        return "starts with '.'"
    for text, shown in _FORBIDDEN:
        if text in name:
            return f"contains {shown}"
    return None


def check_file_name(name: object, key: str) -> str:
    """`name`, when it can be one file name inside a directory; else a `ConfigError` that names
    `key` and the value (empty, a leading `.`, or holding `/`, `\\`, `..` or NUL)."""
    problem = file_name_problem(name)
    if problem is not None:
        raise ConfigError(f"{key} = {name!r} becomes part of a file name and {problem}; "
                          "rename it (no '/', '\\', '..', NUL or leading '.')")
    return name
