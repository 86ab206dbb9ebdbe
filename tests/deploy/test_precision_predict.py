"""`malt predict`, `malt serve` and `Run.predict` under `--precision bf16`: the torch engine's
forward pass in bfloat16, float32 probabilities near the float32 engine's, and bf16 refused with
the onnx engine (it runs the float32 graph) before anything is read or written.

The tolerance is the one of `malt eval`'s bf16 scoring (tests/eval/test_precision_scoring.py):
a fixed model's probabilities move by about a thousandth under bfloat16's 8 significant bits.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

import malt
from malt.cli import main
from malt.data.schema import MAC
from malt.deploy.engines import make_engine
from malt.deploy.options import PredictOptions
from malt.deploy.predict import Scorer, file_sources, predict_file
from malt.deploy.serving import ServingModule
from malt.errors import ConfigError
from malt.jobs.train import train_run
from malt.runs.config import RunConfig
from malt.runs.load import load_run
from malt.serve.options import ServeOptions
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS

SCORE_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished float32 MoAE run and its test day without labels."""
    root = tmp_path_factory.mktemp("bf16-predict")
    data = write_random_dataset(root / "data", days=3, rows=301)
    config = RunConfig.from_dict({
        "seed": 3, "data": {"path": str(data)}, "task": {"main": "last", "aux": ["first", "cat"]},
        "train": {"batch_size": 64}, "model": {"name": "moae", **SMALL_BLOCKS}})
    train_run(config, root / "run")
    unlabelled = root / "unlabelled.parquet"
    pq.write_table(pq.read_table(data / "test" / "test.parquet").drop_columns(list(MAC.labels)),
                   unlabelled)
    return root / "run", unlabelled


def test_the_torch_engine_in_bf16_scores_near_float32(run, tmp_path):
    path, unlabelled = run
    trained = load_run(path)
    scores = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.parquet"
        predict_file(Scorer(trained, precision=precision), file_sources(unlabelled), out)
        scores[precision] = pq.read_table(out).select(["p_last", "p_first"]).to_pandas()
    bf16, fp32 = scores["bf16"].to_numpy(), scores["fp32"].to_numpy()
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    np.testing.assert_allclose(bf16, fp32, rtol=0, atol=SCORE_TOLERANCE)
    assert not np.array_equal(bf16, fp32)  # the forward pass ran in bf16


def test_the_python_api_and_the_command_line_take_the_precision(run, tmp_path, capsys):
    path, unlabelled = run
    api = malt.load_run(path).predict(unlabelled, precision="bf16")
    out = tmp_path / "p.parquet"
    assert main(["predict", "--run", str(path), "--data", str(unlabelled), "--out", str(out),
                 "--precision", "bf16"]) == 0
    assert "(torch on cpu in bf16" in capsys.readouterr().out
    np.testing.assert_array_equal(pq.read_table(out)["p_last"].to_numpy(),
                                  api["p_last"].to_numpy())


def test_bf16_with_the_onnx_engine_is_refused_before_anything_is_written(run, tmp_path,
                                                                           capsys):
    path, unlabelled = run
    out = tmp_path / "p.parquet"
    assert main(["predict", "--run", str(path), "--data", str(unlabelled), "--out", str(out),
                 "--engine", "onnx", "--precision", "bf16"]) == 3
    assert "the onnx engine runs the float32 graph" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ConfigError, match="onnx engine runs the float32 graph"):
        ServeOptions(run=str(path), engine="onnx", precision="bf16")
    with pytest.raises(ConfigError, match="onnx engine runs the float32 graph"):
        malt.load_run(path).predict(unlabelled, engine="onnx", precision="bf16")
    with pytest.raises(ConfigError, match="precision"):
        PredictOptions(run="r", data="d", out="o", precision="fp16")


def test_an_unknown_precision_is_refused_by_the_engine(run):
    serving = ServingModule(load_run(run[0]).model)
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        make_engine("torch", serving, "cpu", "fp16")
