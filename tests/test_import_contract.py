"""The package stack is one-way: the import contract holds, and an upward import breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(config: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(LINT), "--config", str(config), "--no-cache"], env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_stack_is_one_way():
    result = _lint(ROOT / "pyproject.toml", ROOT / "src")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "src" / "malt", tmp_path / "malt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    layout = tmp_path / "malt" / "data" / "layout.py"
    layout.write_text(layout.read_text() + "\nfrom malt.training.config import RunConfig  # noqa\n")
    result = _lint(ROOT / "pyproject.toml", tmp_path)
    assert result.returncode != 0
    assert "malt.data.layout -> malt.training.config" in result.stdout
