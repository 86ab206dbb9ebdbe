"""An ONNX file of `malt export` read back to score raw rows (`load_export`): its description,
its bytes and the vocabs that map raw ids to its tables (the run's, else its training data's,
else those given), and the files it refuses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import malt
from malt.data.layout import write_vocab
from malt.deploy.export import export
from malt.deploy.exported import load_export
from malt.errors import ConfigError
from malt.runs.load import load_run
from support.deploy_models import held_out_moae_run
from support.mac_data import write_random_dataset

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exported")
    out = held_out_moae_run(write_random_dataset(root / "data", days=4, rows=120), root / "run")
    malt.load_run(out).calibrate("isotonic")
    return out


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exported") / "model.onnx"
    export(load_run(run), path)
    return path


def test_an_export_is_read_with_its_runs_vocabs_and_calibration(run, exported):
    trained = load_run(run)
    model = load_export(exported)
    assert model.data == exported.read_bytes()
    assert model.calibrated and model.description["calibration"]["method"] == "isotonic"
    assert model.input_names == trained.model.serving_inputs
    assert model.output_names == ("p_last", "p_first")
    assert model.schema == trained.schema
    for column, lookup in trained.lookups.items():
        assert model.lookups[column].size == lookup.size, column


def test_without_its_run_an_export_takes_its_training_datas_vocabs(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = tmp_path / "model.onnx"
    export(load_run(copy), path, calibrated=False)
    shutil.rmtree(copy)
    model = load_export(path)
    assert not model.calibrated and model.description["calibration"] is None
    assert model.lookups.keys() == load_run(run).lookups.keys()


def test_files_that_are_not_a_malt_onnx_export_are_refused(run, exported, tmp_path):
    with pytest.raises(ConfigError, match="no such exported file"):
        load_export(tmp_path / "none.onnx")
    scripted = tmp_path / "model.pt"
    export(load_run(run), scripted, "torchscript")
    with pytest.raises(ConfigError, match="TorchScript file"):
        load_export(scripted)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a model")
    with pytest.raises(ConfigError, match="not an ONNX model|not exported by malt"):
        load_export(garbage)
    alone = tmp_path / "alone.onnx"
    shutil.copy(exported, alone)
    with pytest.raises(ConfigError, match="sidecar"):
        load_export(alone)
    # a sidecar beside another file than the one it describes
    other = tmp_path / "other.onnx"
    export(load_run(run), other, calibrated=False)
    shutil.copy(Path(f"{exported}.json"), Path(f"{other}.json"))
    with pytest.raises(ConfigError, match="sha256 differs"):
        load_export(other)


def test_vocabs_that_do_not_fit_the_exported_tables_are_refused(run, exported, tmp_path):
    vocabs = tmp_path / "vocabs"
    shutil.copytree(Path(load_run(run).config.data.path) / "vocabs", vocabs)
    field = load_run(run).schema.fields[0].name
    write_vocab(vocabs, field, ["1", "2"])
    with pytest.raises(ConfigError, match=f"other sizes.*{field}"):
        load_export(exported, vocabs=vocabs)
    with pytest.raises(ConfigError, match="the vocabs of .*missing"):
        load_export(exported, vocabs=tmp_path / "none")
