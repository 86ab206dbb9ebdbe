"""examples/plugin, a package of its own with a model and an encoder, installed outside malt's
tree: the command line finds them through their entry points and trains, evaluates, predicts
and exports the model; a run of it refuses to load once the package is gone; the page that
shows the example shows these very files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import onnxruntime
import pandas as pd
import pytest

from support.mac_data import write_random_dataset

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugin"
PAGE = ROOT / "docs" / "add-your-own-model.md"
SMALL = ["--batch-size", "32", "--lr", "0.01", "--model-option", "encoder.embed_dim=4",
         "--model-option", "encoder.width=8"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package, copied to a temporary directory and installed from there into a
    directory of its own; without network when setuptools is at hand to build it (else pip
    fetches it for an isolated build)."""
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PLUGIN, work / "source")
    offline = ["--no-build-isolation", "--no-index"] if find_spec("setuptools") else []
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *offline, "--target",
         str(work / "site"), str(work / "source")],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return work / "site"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("plugin") / "data", days=3, rows=160)


def malt(*args: str, site: Path | None) -> subprocess.CompletedProcess:
    """`python -m malt ARGS`, with the package installed in `site` importable (None: not)."""
    paths = [str(site)] if site is not None else []
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "malt", *args], capture_output=True,
                          text=True, timeout=600, env=env)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_installed_model_trains_evaluates_predicts_and_exports_through_the_cli(
        site, data, tmp_path):
    listed = ok(malt("models", site=site))
    assert re.search(r"^bag_mlp +One MLP head per view .*\[plugin: malt-bag-model 0\.1\.0\]$",
                     listed, re.M), listed
    run = tmp_path / "run"
    ok(malt("train", "--data", str(data), "--model", "bag_mlp", "--main", "last", "--aux",
            "first", *SMALL, "--out", str(run), site=site))
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "bag_mlp"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["views"]) == {"last", "first"}
    assert f"{metrics['views']['last']['auc']:.4f}" in ok(malt("eval", "--run", str(run),
                                                               site=site))
    scores = tmp_path / "scores.parquet"
    ok(malt("predict", "--run", str(run), "--data", str(data), "--out", str(scores), site=site))
    predicted = pd.read_parquet(scores)
    assert {"p_last", "p_first"} <= set(predicted.columns)
    assert predicted["p_last"].between(0, 1).all()
    exported = tmp_path / "model.onnx"
    ok(malt("export", "--run", str(run), "--out", str(exported), site=site))
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    # The plugin's encoder reads the categorical fields only, and so does the exported model.
    assert [i.name for i in session.get_inputs()] == ["sparse"]


@pytest.mark.slow
def test_a_built_in_model_trains_on_the_plugins_encoder(site, data, tmp_path):
    run = tmp_path / "run"
    ok(malt("train", "--data", str(data), "--model", "mmoe", "--main", "last", "--aux", "first",
            "--model-option", "encoder.name=bag", *SMALL, "--out", str(run), site=site))
    assert json.loads((run / "metrics.json").read_text())["views"]["last"]["auc"] > 0
    done = malt("train", "--data", str(data), "--model", "mmoe", "--model-option",
                "encoder.name=bagg", "--out", str(tmp_path / "other"), site=site)
    assert done.returncode == 3
    assert "model.encoder.name = 'bagg': unknown encoder 'bagg'; did you mean 'bag'?" in \
        done.stderr


@pytest.mark.slow
def test_a_run_of_a_model_whose_package_is_gone_is_refused_naming_it(site, data, tmp_path):
    run = tmp_path / "run"
    ok(malt("train", "--data", str(data), "--model", "bag_mlp", *SMALL, "--out", str(run),
            site=site))
    for command in (["eval", "--run", str(run)],
                    ["predict", "--run", str(run), "--data", str(data), "--out",
                     str(tmp_path / "scores.parquet")],
                    ["export", "--run", str(run), "--out", str(tmp_path / "model.onnx")]):
        done = malt(*command, site=None)
        assert done.returncode == 3, (command, done.stderr)
        assert "unknown model 'bag_mlp'" in done.stderr
        assert "entry point 'bag_mlp' in the group 'malt.models'" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_page_shows_the_example_as_it_is():
    page = PAGE.read_text()
    for name in ("pyproject.toml", "malt_bag_model.py"):
        text = (PLUGIN / name).read_text()
        assert f"\n{text}```" in page, f"{PAGE.name} does not show {name} as it is"
