"""Provenance reads the git checkout malt runs from and never writes it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import malt
from malt.provenance import git_commit


def test_the_commit_is_read_without_writing_the_repository():
    package = Path(malt.__file__).parent
    found = subprocess.run(["git", "-C", str(package), "rev-parse", "--git-path", "index"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip("malt does not run from a git checkout here")
    index = Path(found.stdout.strip())
    index = index if index.is_absolute() else package / index
    # A file whose stat no longer matches the index: a refreshing `git status` rewrites the
    # index (holding its lock, which a git killed half-way leaves behind).
    os.utime(package / "errors.py")
    before = index.stat().st_mtime_ns
    assert git_commit()
    assert index.stat().st_mtime_ns == before
