"""A model on each flat encoder (`dnn`, `dcnv2`, `din`) exports to ONNX and TorchScript and
scores as the eager model does."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from malt.data.lookups import load_lookups, vocab_info
from malt.data.schema import MAC
from malt.data.task import Task
from malt.deploy.export import export, sidecar_path
from malt.models import model_spec
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.load import TrainedModel
from support.deploy_models import converted
from support.mac_data import write_random_dataset

PARITY = 1e-5
BLOCKS = {"expert": {"dim": 16}, "tower": {"dims": [8, 4]}}
ENCODERS = {"dnn": {"hidden_dims": [24, 12], "activation": "prelu", "dropout": 0.2},
            "dcnv2": {"cross_layers": 2, "cross_rank": 6, "deep_dims": [12]},
            "din": {"attention_dims": [8]}}


@pytest.fixture(scope="module")
def mac_data(tmp_path_factory) -> Path:
    return write_random_dataset(tmp_path_factory.mktemp("export") / "mac", rows=131)


def _moae_on(encoder: str, data: Path) -> TrainedModel:
    """MoAE (main last, aux first) on `encoder` with seeded random weights, in eval mode."""
    model_options = {"name": "moae", "encoder": {"name": encoder, "embed_dim": 8,
                                                 **ENCODERS[encoder]}, **BLOCKS}
    task = Task("last", ("first",))
    lookups = load_lookups(MAC, data / "vocabs")
    info = vocab_info(MAC, lookups)
    torch.manual_seed(0)
    spec = model_spec("moae")
    options = {k: v for k, v in model_options.items() if k != "name"}
    model = spec.build(MAC, info, task, spec.make_config(options)).eval()
    config = RunConfig.from_dict({"data": {"path": str(data)},
                                  "task": {"main": "last", "aux": ["first"]},
                                  "model": model_options})
    return TrainedModel(run=RunDir(data / "no-run"), config=config, schema=MAC, task=task,
                        lookups=lookups, vocab=info, model=model)


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_a_model_on_a_flat_encoder_exports_and_scores_like_the_eager_model(
        encoder, mac_data, tmp_path):
    trained = _moae_on(encoder, mac_data)
    arrays = converted(MAC, trained, mac_data / "test" / "test.parquet")
    feeds = {k: arrays[k].astype(np.int64 if k in ("sparse", "seq") else np.float32)
             for k in trained.model.serving_inputs}
    with torch.no_grad():
        probs = trained.model.probabilities({k: torch.from_numpy(a) for k, a in feeds.items()})
    reference = torch.stack([probs[v] for v in trained.views], 1).numpy()
    for fmt in ("onnx", "torchscript"):
        out = tmp_path / f"model.{fmt}"
        with warnings.catch_warnings():
            warnings.simplefilter("error", torch.jit.TracerWarning)
            export(trained, out, fmt)
        sidecar = json.loads(sidecar_path(out).read_text())
        assert sidecar["config"]["model"]["encoder"]["name"] == encoder
        if fmt == "onnx":
            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = np.stack(session.run(None, feeds), 1)
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated",
                                        DeprecationWarning)
                module = torch.jit.load(str(out))
            with torch.no_grad():
                got = torch.stack(module(*(torch.from_numpy(a) for a in feeds.values())),
                                  1).numpy()
        assert got.shape == reference.shape == (len(arrays["sparse"]), 2)
        assert np.abs(got - reference).max() <= PARITY, fmt
