"""A calibrated run, as a user meets it: `malt calibrate`, then `malt eval`, `malt predict`,
the Python API and the exported ONNX and TorchScript files all give the calibrated scores."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import malt
from malt.cli import main
from malt.data.schema import schema_for
from malt.deploy.export import export, read_description
from malt.deploy.predict import Scorer, file_sources
from malt.errors import DataError
from malt.jobs.train import train_run
from malt.runs.calibration import Calibration, Isotonic, Temperature
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.load import load_run
from support.deploy_models import converted, held_out_moae_run, untrained
from support.mac_data import write_random_dataset
from support.model_configs import SMALL_BLOCKS

VIEWS = ("last", "first")
PARITY = 1e-5
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def feeds(trained, rows: Path) -> dict[str, np.ndarray]:
    """The serving inputs of a day file's rows, as the reader converts them."""
    arrays = converted(trained.schema, trained, rows)
    kinds = {"sparse": np.int64, "seq": np.int64, "target_action": np.int64}
    return {k: arrays[k].astype(kinds.get(k, np.float32)) for k in trained.model.serving_inputs}


def run_onnx_file(path: Path, trained, rows: Path) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.stack(session.run(None, feeds(trained, rows)), 1)


def run_torchscript_file(path: Path, trained, rows: Path) -> np.ndarray:
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        module = torch.jit.load(str(path))
    with torch.no_grad():
        outputs = module(*(torch.from_numpy(a) for a in feeds(trained, rows).values()))
    return torch.stack(outputs, 1).numpy()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("calibrated") / "data", days=4,
                                rows=400)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """A finished MoAE run whose last training day is held out (the validation protocol)."""
    return held_out_moae_run(data, tmp_path_factory.mktemp("calibrated") / "run")


def steepest(calibrator) -> float:
    """The largest slope of a piecewise-linear (isotonic) map; 1 for the logit maps, which
    the tests' scores keep far from their steep ends."""
    if not isinstance(calibrator, Isotonic):
        return 1.0
    return float(np.max(np.diff(calibrator.y) / np.diff(calibrator.x)))


def scores(run_path: Path, data: Path, **options) -> np.ndarray:
    scorer = Scorer(load_run(run_path), **options)
    return np.concatenate([np.stack([b.column(j).to_numpy() for j in range(len(VIEWS))], 1)
                           for b in scorer.batches(file_sources(data / "test"))])


def test_calibrate_then_eval_show_the_metrics_before_and_after(run, capsys):
    assert main(["calibrate", "--run", str(run), "--method", "platt"]) == 0
    text = capsys.readouterr().out
    assert "fitted platt calibrators of 2 view(s) on train-02" in text
    assert "note: the run was trained on these days" not in text  # held out
    saved = json.loads((run / "calibration.json").read_text())
    assert saved["method"] == "platt" and set(saved["views"]) == set(VIEWS)
    assert "calibration.json" in (run / ".malt-manifest.json").read_text()
    assert main(["eval", "--run", str(run)]) == 0
    text = capsys.readouterr().out
    assert "calibration (platt, fitted on train-02" in text and "→ after" in text
    # the validation protocol evaluates the days the calibrators were fitted on: said so
    assert "in-sample" in text


@pytest.mark.parametrize("method", ["isotonic", "platt", "temperature"])
def test_predict_the_api_and_both_exports_give_the_calibrated_scores(method, run, data,
                                                                     tmp_path):
    handle = malt.load_run(run)
    if method == "temperature":
        # This barely trained model scores ~0.58 against a 20 % rate: no T > 0 lowers that (the
        # fit says so, tests/eval), so a temperature is saved as `malt calibrate` would.
        calibration = Calibration("temperature", {v: Temperature(1.7) for v in VIEWS},
                                  ("train-02",), 400)
        RunDir(run).save_calibration(calibration)
        with pytest.raises(DataError, match="no intercept"):
            handle.calibrate("temperature")
    else:
        calibration = handle.calibrate(method)
        assert handle.calibration is calibration
    assert calibration.days == ("train-02",)
    raw = scores(run, data, calibrated=False)
    calibrated = scores(run, data)
    assert np.abs(calibrated - calibration.apply_all(VIEWS, raw)).max() <= PARITY
    assert not np.allclose(calibrated, raw)
    frame = malt.load_run(run).predict(data / "test")
    assert np.abs(frame[["p_last", "p_first"]].to_numpy() - calibrated).max() <= PARITY
    trained = load_run(run)
    arrays = {"onnx": tmp_path / "m.onnx", "torchscript": tmp_path / "m.pt"}
    for fmt, path in arrays.items():
        info = export(trained, path, fmt)
        assert info["calibration"]["method"] == method
        assert read_description(path)["calibration"]["days"] == ["train-02"]
    served = {"onnx": run_onnx_file(arrays["onnx"], trained, data / "test" / "test.parquet"),
              "torchscript": run_torchscript_file(arrays["torchscript"], trained,
                                                  data / "test" / "test.parquet")}
    raw_onnx = run_onnx_file(tmp_path / "raw.onnx", trained, data / "test" / "test.parquet") \
        if export(trained, tmp_path / "raw.onnx", "onnx", calibrated=False) else None
    # The graph's calibrators compute what the run's do, on the same raw scores ...
    assert np.abs(served["onnx"] - calibration.apply_all(VIEWS, raw_onnx)).max() <= 1e-6
    # ... and the files give `malt predict`'s scores: to float tolerance, times the map's
    # steepest slope (an isotonic map rises steeply between two close breakpoints, so a raw
    # score 1e-7 apart between engines may land a little further apart after it).
    tolerance = PARITY * max(1.0, *(steepest(calibration.views[v]) for v in VIEWS))
    for fmt, values in served.items():
        assert np.abs(values - calibrated).max() <= tolerance, fmt
        assert np.mean(np.abs(values - calibrated) <= PARITY) > 0.98, fmt
    onnx_engine = scores(run, data, engine="onnx")
    assert np.abs(onnx_engine - served["onnx"]).max() <= 1e-6


def test_uncalibrated_export_and_predict_leave_the_calibrators_out(run, data, tmp_path,
                                                                   capsys):
    malt.load_run(run).calibrate("isotonic")
    out = tmp_path / "raw.onnx"
    assert main(["export", "--run", str(run), "--out", str(out), "--uncalibrated"]) == 0
    assert "(calibrated:" not in capsys.readouterr().out
    assert read_description(out)["calibration"] is None
    trained = load_run(run)
    raw = run_onnx_file(out, trained, data / "test" / "test.parquet")
    assert np.abs(raw - scores(run, data, calibrated=False)).max() <= PARITY
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "cal.onnx")]) == 0
    assert "(calibrated: isotonic)" in capsys.readouterr().out
    table = tmp_path / "p.parquet"
    assert main(["predict", "--run", str(run), "--data", str(data / "test"), "--out",
                 str(table), "--uncalibrated", "--keep", "ad_feat0", "ad_feat1"]) == 0
    text = capsys.readouterr().out
    assert "calibration" not in text.splitlines()[0]
    written = pd.read_parquet(table)
    assert list(written.columns) == ["p_last", "p_first", "user_id", "ad_feat0", "ad_feat1"]
    assert np.abs(written[["p_last", "p_first"]].to_numpy() - raw).max() <= PARITY
    assert json.loads(pq.read_metadata(table).metadata[b"malt"])["calibration"] is None


def test_isotonic_without_scikit_learn_says_what_to_install(run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn.isotonic", None)
    assert main(["calibrate", "--run", str(run), "--method", "isotonic"]) == 3
    assert "pip install 'malt[calibrate]'" in capsys.readouterr().err


def test_calibrating_on_trained_days_says_so(run, capsys):
    assert main(["calibrate", "--run", str(run), "--method", "platt", "--days", "2"]) == 0
    text = capsys.readouterr().out
    assert "on train-01, train-02" in text and "in-sample" in text
    assert main(["calibrate", "--run", str(run), "--days", "9"]) == 3
    assert "3 training days" in capsys.readouterr().err
    assert main(["calibrate", "--run", str(run), "--by", "target_action"]) == 3
    assert "has none" in capsys.readouterr().err


SHOP_SCHEMA = """
name = "shop"
user_column = "buyer"
labels = ["last", "first"]
numeric = {price = "log1p", discount = "standardise"}
numeric_fill = 1.0

[fields]
user = ["buyer_city"]
ad = ["sku"]
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """A data set with numeric columns and no sequences, with its vocabs."""
    import pyarrow as pa

    from malt.data.layout import write_day

    root = tmp_path_factory.mktemp("shop") / "shop"
    rng = np.random.default_rng(0)
    for name in ("train/day0.parquet", "test/day1.parquet"):
        rows = 120
        price = rng.lognormal(3, 1, rows)
        price[:3] = np.nan  # filled by numeric_fill, as the example does
        write_day(root / name, pa.table({
            "buyer": pa.array([f"b{i}" for i in rng.integers(0, 30, rows)]),
            "buyer_city": pa.array(rng.integers(0, 5, rows)),
            "sku": pa.array(rng.integers(0, 20, rows)),
            "price": pa.array(price), "discount": pa.array(rng.normal(0.2, 0.1, rows)),
            "last": pa.array((rng.random(rows) < 0.2).astype(np.float32)),
            "first": pa.array((rng.random(rows) < 0.2).astype(np.float32))}))
    (root / "schema.toml").write_text(SHOP_SCHEMA)
    assert main(["prepare", "--data", str(root), "--build-vocabs"]) == 0
    return root


def test_a_numeric_model_exports_without_warnings_and_the_example_serves_it(shop, tmp_path):
    schema = schema_for(shop)
    trained = untrained("moae", shop, schema, "last", ("first",))
    out = tmp_path / "shop.onnx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export(trained, out, "onnx")
    assert [w for w in caught if issubclass(w.category, UserWarning)] == []
    rows = shop / "test" / "day1.parquet"
    done = subprocess.run([sys.executable, str(EXAMPLES / "serve_onnx.py"), str(tmp_path),
                           str(out), str(rows), str(shop / "vocabs")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "('numeric', 'float32', ['batch', 2])" in done.stdout
    served = np.load(tmp_path / "onnx_scores.npy")
    expected = Scorer(trained).score(converted(schema, trained, rows))
    assert np.abs(served - expected).max() <= PARITY


def test_train_calibrate_fits_after_training_and_checks_the_method_first(data, tmp_path,
                                                                         capsys, monkeypatch):
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--model", "base", "--main", "last", "--eval-split",
            "validation", "--batch-size", "64", "--out", str(out), "--model-option",
            "encoder.embed_dim=4", "--model-option", "tower.dims=[4]"]
    monkeypatch.setitem(sys.modules, "sklearn.isotonic", None)
    assert main([*args, "--calibrate", "isotonic"]) == 3
    assert "malt[calibrate]" in capsys.readouterr().err and not out.exists()
    monkeypatch.undo()
    assert main([*args, "--calibrate", "platt"]) == 0
    text = capsys.readouterr().out
    assert "fitted platt calibrators of 1 view(s) on train-02" in text
    assert text.rstrip().endswith(f"run: {out}")
    assert load_run(out).calibration.method == "platt"


def test_per_target_action_calibration_reads_the_target_action_in_every_engine(
        tmp_path_factory, tmp_path, monkeypatch, capsys):
    import malt.eval.calibrate as calibrate_module
    from support.kaml_data import kaml_schema, write_kaml_dataset

    kaml = write_kaml_dataset(tmp_path_factory.mktemp("kaml") / "data", days=4, rows=400)
    (kaml / "schema.json").write_text(json.dumps(kaml_schema().to_dict()))
    out = tmp_path / "run"
    train_run(RunConfig.from_dict({
        "seed": 1, "data": {"path": str(kaml), "schema": str(kaml / "schema.json"),
                            "eval_split": "validation"},
        "task": {"main": "act", "aux": ["reg"]}, "train": {"batch_size": 64},
        "model": {"name": "moae", **SMALL_BLOCKS}}), out)
    monkeypatch.setattr(calibrate_module, "MIN_SLICE_ROWS", 5)  # tiny data: small slices
    assert main(["calibrate", "--run", str(out), "--method", "platt", "--by",
                 "target_action"]) == 0
    assert "per target action (own calibrators: act" in capsys.readouterr().out
    api = malt.load_run(out).calibrate("isotonic", by="target_action")
    assert api.by == "target_action" and load_run(out).calibration.method == "isotonic"
    assert main(["calibrate", "--run", str(out), "--method", "platt", "--by",
                 "target_action"]) == 0
    trained = load_run(out)
    calibration = trained.calibration
    assert calibration.by == "target_action" and any(calibration.slices.values())
    test_day = kaml / "test" / "test.parquet"
    arrays = converted(trained.schema, trained, test_day)
    raw = Scorer(trained, calibrated=False).score(arrays)
    calibrated = Scorer(trained).score(arrays)
    assert np.abs(calibrated - calibration.apply_all(("act", "reg"), raw,
                                                     arrays["target_action"])).max() <= PARITY
    info = export(trained, tmp_path / "m.onnx", "onnx")
    assert [i["name"] for i in info["inputs"]][-1] == "target_action"
    assert info["calibration"]["by"] == "target_action"
    export(trained, tmp_path / "m.pt", "torchscript")
    # MoAE reads no target action itself: the calibrators' input is added after its own
    assert "target_action" not in trained.model.serving_inputs
    with_target = {**feeds(trained, test_day), "target_action": arrays["target_action"]}
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"),
                                           providers=["CPUExecutionProvider"])
    onnx_out = np.stack(session.run(None, with_target), 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        module = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        script_out = torch.stack(module(*(torch.from_numpy(a) for a in with_target.values())),
                                 1).numpy()
    for served in (onnx_out, script_out):
        assert np.abs(served - calibrated).max() <= PARITY
