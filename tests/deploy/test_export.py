"""Every registered model exports to ONNX and TorchScript and scores as the eager model does."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from malt.data.schema import MAC
from malt.deploy.export import (
    export,
    exported_by_malt,
    is_sidecar,
    read_description,
    sidecar_path,
)
from malt.deploy.serving import ServingModule
from malt.errors import ConfigError
from malt.models import model_names
from support.deploy_models import converted, untrained
from support.kaml_data import kaml_schema, write_kaml_dataset
from support.mac_data import write_random_dataset

PARITY = 1e-5
MAC_AUX = ("first", "linear", "cat")
KAML_MODELS = ("star", "kaml")
"""Models whose prediction reads more than the encoder's inputs on data with a target action."""


@pytest.fixture(scope="module")
def mac_data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("export") / "mac", rows=257)


@pytest.fixture(scope="module")
def kaml_data(tmp_path_factory) -> Path:
    return write_kaml_dataset(tmp_path_factory.mktemp("export") / "kaml", rows=211)


def eager(trained, arrays) -> np.ndarray:
    """Probabilities [N, V] of the eager model on converted rows."""
    batch = {k: torch.from_numpy(np.asarray(arrays[k])).long()
             if arrays[k].dtype.kind == "i" else torch.from_numpy(arrays[k])
             for k in trained.model.serving_inputs}
    with torch.no_grad():
        probs = trained.model.probabilities(batch)
    return torch.stack([probs[v] for v in trained.views], 1).numpy()


def feeds(trained, arrays) -> dict[str, np.ndarray]:
    kinds = {"sparse": np.int64, "seq": np.int64, "target_action": np.int64}
    return {k: arrays[k].astype(kinds.get(k, np.float32)) for k in trained.model.serving_inputs}


def run_onnx(path: Path, trained, arrays) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.stack(session.run(None, feeds(trained, arrays)), 1)


def run_torchscript(path: Path, trained, arrays) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
        module = torch.jit.load(str(path))
    with torch.no_grad():
        outputs = module(*(torch.from_numpy(a) for a in feeds(trained, arrays).values()))
    return torch.stack(outputs, 1).numpy()


CASES = [(name, "mac") for name in model_names()] + [(name, "kaml") for name in KAML_MODELS] \
    + [(f"star:{encoder}", "kaml") for encoder in ("dnn", "dcnv2", "din")]
"""A model on its default encoder, or `model:encoder` (STAR reads the ad side of each its own
way)."""


@pytest.mark.parametrize("name,data_kind", CASES)
def test_every_model_exports_and_scores_the_test_day_like_the_eager_model(
        name, data_kind, mac_data, kaml_data, tmp_path):
    if data_kind == "mac":
        data, schema, main, aux = mac_data, MAC, "last", MAC_AUX
    else:
        data, schema, main, aux = kaml_data, kaml_schema(), "pay", ("act", "reg")
    name, _, encoder = name.partition(":")
    trained = untrained(name, data, schema, main, aux, encoder=encoder or None)
    arrays = converted(schema, trained, data / "test" / "test.parquet")
    reference = eager(trained, arrays)
    assert reference.shape == (len(arrays["sparse"]), len(trained.views))
    for fmt, run in (("onnx", run_onnx), ("torchscript", run_torchscript)):
        out = tmp_path / f"model.{fmt}"
        with warnings.catch_warnings():
            # A trace that bakes in a value of the example inputs warns: it must not.
            warnings.simplefilter("error", torch.jit.TracerWarning)
            export(trained, out, fmt)
        got = run(out, trained, arrays)
        assert got.shape == reference.shape
        assert np.abs(got - reference).max() <= PARITY, fmt


def test_the_target_action_is_an_input_where_the_prediction_reads_it(kaml_data):
    star = untrained("star", kaml_data, kaml_schema(), "pay", ("act", "reg"))
    assert ServingModule(star.model).input_names == ("sparse", "target_action")
    kaml = untrained("kaml", kaml_data, kaml_schema(), "pay", ("act", "reg"))
    assert ServingModule(kaml.model).input_names == ("sparse",)


def test_the_artifact_describes_its_inputs_outputs_schema_and_origin(mac_data, tmp_path):
    trained = untrained("moae", mac_data, MAC, "last", MAC_AUX)
    for fmt in ("onnx", "torchscript"):
        out = tmp_path / f"moae.{fmt}"
        sidecar = export(trained, out, fmt)
        stored = read_description(out)
        assert stored["format"] == fmt and stored["model"] == "moae"
        assert stored["views"] == ["last", "first", "linear"]
        assert [o["name"] for o in stored["outputs"]] == ["p_last", "p_first", "p_linear"]
        assert stored["inputs"] == [
            {"name": "sparse", "dtype": "int64", "shape": ["batch", len(MAC.fields)]},
            {"name": "seq", "dtype": "int64", "shape": ["batch", 3, 20]},
            {"name": "dense_seq", "dtype": "float32", "shape": ["batch", 2, 20]}]
        assert stored["schema"] == json.loads(json.dumps(MAC.to_dict()))
        assert stored["vocab_sizes"] == trained.vocab.sizes
        assert stored["malt_version"] and "git_commit" in stored
        on_disk = json.loads(sidecar_path(out).read_text())
        assert on_disk == json.loads(json.dumps(sidecar))
        assert on_disk["config"]["model"]["name"] == "moae"
        assert on_disk["bytes"] == out.stat().st_size


def test_onnx_inputs_have_a_dynamic_batch_dimension(mac_data, tmp_path):
    trained = untrained("base", mac_data, MAC, "last", ())
    export(trained, tmp_path / "base.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "base.onnx"),
                                           providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["sparse", "seq", "dense_seq"]
    assert all(i.shape[0] == "batch" for i in session.get_inputs())
    assert [o.name for o in session.get_outputs()] == ["p_last"]


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_existing_export_is_replaced_only_when_asked(mac_data, tmp_path, fmt):
    trained = untrained("base", mac_data, MAC, "last", ())
    out = tmp_path / f"base.{'pt' if fmt == 'torchscript' else 'onnx'}"
    export(trained, out, fmt)
    assert exported_by_malt(out) and is_sidecar(sidecar_path(out))
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        export(trained, out, fmt)
    export(trained, out, fmt, overwrite=True)
    assert read_description(out)["format"] == fmt
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name, sidecar_path(out).name]


@pytest.mark.parametrize("theirs", ["model", "sidecar"])
def test_overwrite_never_replaces_a_file_malt_did_not_write(mac_data, tmp_path, theirs):
    trained = untrained("base", mac_data, MAC, "last", ())
    out = tmp_path / "base.pt"
    export(trained, out, "torchscript")
    mine = out if theirs == "model" else sidecar_path(out)
    mine.write_text('{"mine": true}')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError, match=f"{mine.name} was not written by malt"):
        export(trained, out, "torchscript", overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("content", [b"mine", b"PK\x03\x04 not a zip", b"\x08\x01\x12\x00"])
def test_files_of_others_are_not_taken_for_exports(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    assert not exported_by_malt(path) and not is_sidecar(path)


def test_an_unknown_format_is_refused(mac_data, tmp_path):
    trained = untrained("base", mac_data, MAC, "last", ())
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export(trained, tmp_path / "m", "tflite")
    assert not list(tmp_path.iterdir())
