"""The scripts in examples/ run as a user runs them, and say what they claim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, work: Path) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), str(work)], cwd=work.parent,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_quickstart_trains_predicts_and_exports_and_onnx_runtime_serves_it(tmp_path):
    work = tmp_path / "work"
    text = run_example("quickstart.py", work)
    assert "test GAUC of last-click: 0." in text and "exported to" in text
    scores = pd.read_parquet(work / "scores.parquet")
    assert list(scores.columns) == ["p_last", "p_first", "p_linear", "user_id", "ad_feat0"]
    assert scores["p_last"].between(0, 1).all()
    text = run_example("serve_onnx.py", work)
    assert "p_last: mean" in text
    served = np.load(work / "onnx_scores.npy")
    expected = scores[["p_last", "p_first", "p_linear"]].to_numpy()
    assert np.abs(served - expected).max() <= 1e-5
