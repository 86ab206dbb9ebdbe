"""Where an artifact comes from: the malt version and, in a git checkout, the commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

from malt._version import __version__


def git_commit() -> str | None:
    """The commit of the malt source tree this process runs (with `+dirty` when tracked files
    differ from it); None when malt is not run from a git checkout (an installed wheel)."""
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        # Without optional locks `git status` only reads: it does not refresh the index, which
        # a git killed half-way (a full disk, a file size limit) left locked for the user.
        try:
            done = subprocess.run(["git", "--no-optional-locks", "-C", str(package), *args],
                                  capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # A wheel installed inside some other repository must not report that repository's commit.
    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no", ".")
    return f"{commit}+dirty" if dirty else commit


def provenance() -> dict[str, str | None]:
    """{"malt_version": ..., "git_commit": ...} for the sidecars and metadata malt writes."""
    return {"malt_version": __version__, "git_commit": git_commit()}
