"""The package stack is one-way and has no import circle: the import contracts hold, and an
upward import or a circle breaks them."""

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
    assert "3 kept, 0 broken" in result.stdout


def _with_import(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package in `tmp_path` where `module` (a path under malt/) ends with
    `line`."""
    shutil.copytree(ROOT / "src" / "malt", tmp_path / "malt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "malt" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    return tmp_path


def test_an_upward_import_breaks_the_contract(tmp_path):
    copy = _with_import(tmp_path, "data/layout.py", "from malt.runs.config import RunConfig")
    result = _lint(ROOT / "pyproject.toml", copy)
    assert result.returncode != 0
    assert "malt.data.layout -> malt.runs.config" in result.stdout


def test_a_model_stack_package_importing_a_data_producer_breaks_the_contract(tmp_path):
    copy = _with_import(tmp_path, "training/builder.py", "import malt.sources.simulate")
    result = _lint(ROOT / "pyproject.toml", copy)
    assert result.returncode != 0
    assert "malt.training.builder -> malt.sources.simulate" in result.stdout


def test_an_import_circle_breaks_the_contract(tmp_path):
    # pipeline -> memory -> protocol, and now protocol -> pipeline.
    copy = _with_import(tmp_path, "sources/attribution/protocol.py",
                        "from malt.sources.attribution.pipeline import ENGINES")
    result = _lint(ROOT / "pyproject.toml", copy)
    assert result.returncode != 0
    assert "No cycles are allowed in malt.sources.attribution" in result.stdout


def test_one_attribution_engine_importing_the_other_breaks_the_contract(tmp_path):
    copy = _with_import(tmp_path, "sources/attribution/spark/mac.py",
                        "from malt.sources.attribution.memory import MemoryEngine")
    result = _lint(ROOT / "pyproject.toml", copy)
    assert result.returncode != 0
    assert "malt.sources.attribution.spark is not allowed to import" in result.stdout
