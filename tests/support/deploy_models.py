"""Trained-model objects for the deploy tests, without training (random weights suffice to
compare an export with the eager model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from malt.data.lookups import load_lookups, vocab_info
from malt.data.reader import DayConverter, array_shapes, open_parquet, read_chunks
from malt.data.schema import Schema
from malt.data.task import CAT, Task
from malt.deploy.serving import INPUT_DTYPES
from malt.models import model_spec
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.load import TrainedModel
from support.model_configs import SMALL_BLOCKS


def untrained(name: str, data: Path, schema: Schema, main: str, aux: tuple[str, ...],
              seed: int = 0, encoder: str | None = None) -> TrainedModel:
    """Model `name` with small blocks and seeded random weights, over the vocabs of `data`;
    on `encoder` at its defaults (8 wide) when given, else on the model's own."""
    import torch

    spec = model_spec(name)
    if not spec.traits.uses_aux:
        aux = ()
    if not spec.traits.takes_cat:
        aux = tuple(v for v in aux if v != CAT)
    task = Task(main=main, aux=aux)
    lookups = load_lookups(schema, data / "vocabs")
    info = vocab_info(schema, lookups)
    torch.manual_seed(seed)
    blocks = SMALL_BLOCKS if encoder is None else \
        {**SMALL_BLOCKS, "encoder": {"name": encoder, "embed_dim": 8}}
    model = spec.build(schema, info, task, spec.make_config(blocks)).eval()
    config = RunConfig.from_dict({"data": {"path": str(data)},
                                  "task": {"main": main, "aux": list(aux)},
                                  "model": {"name": name, **blocks}})
    return TrainedModel(run=RunDir(data / "no-run"), config=config, schema=schema, task=task,
                        lookups=lookups, vocab=info, model=model)


def converted(schema: Schema, trained: TrainedModel, path: Path) -> dict[str, np.ndarray]:
    """The arrays of a whole day file as the reader converts them."""
    pf = open_parquet(path)
    converter = DayConverter(schema, trained.lookups)
    out = {name: np.empty(shape, dtype) for name, (shape, dtype) in
           array_shapes(schema, pf.metadata.num_rows).items()}
    start = 0
    for group in range(pf.metadata.num_row_groups):
        for offset, chunk in read_chunks(pf, path, group, start, converter.columns):
            part = {name: np.empty((chunk.num_rows, *a.shape[1:]), a.dtype)
                    for name, a in out.items()}
            converter.convert(chunk, offset, str(path), part)
            for name, a in part.items():
                out[name][offset:offset + chunk.num_rows] = a
        start += pf.metadata.row_group(group).num_rows
    return out


def eager_scores(trained: TrainedModel, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The eager model's probabilities [N, V] of converted arrays, views in the run's order."""
    import torch

    feeds = {k: torch.from_numpy(arrays[k].astype(INPUT_DTYPES[k]))
             for k in trained.model.serving_inputs}
    with torch.no_grad():
        probs = trained.model.probabilities(feeds)
    return torch.stack([probs[v] for v in trained.views], 1).numpy()


def exported_scores(path: Path, fmt: str, trained: TrainedModel,
                    arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Probabilities [N, V] of converted arrays from the `fmt` ("onnx" or "torchscript")
    file at `path`, fed as a client would feed it."""
    import warnings

    import torch

    feeds = {k: arrays[k].astype(INPUT_DTYPES[k]) for k in trained.model.serving_inputs}
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.stack(session.run(None, feeds), 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return torch.stack(module(*(torch.from_numpy(a) for a in feeds.values())), 1).numpy()


def assert_predict_and_exports_score_as(reference: np.ndarray, run: Path, trained: TrainedModel,
                                        day: Path, arrays: dict[str, np.ndarray], out: Path,
                                        tolerance: float) -> None:
    """`malt predict` of `run` on `day` scores the main view of `reference` [N, V] (views in
    the run's order), and its
    ONNX and TorchScript exports (traced without a TracerWarning) score all of `reference`
    from `arrays`, each to `tolerance`; files go to the folder `out`."""
    import warnings

    import pyarrow.parquet as pq
    import torch

    from malt.cli import main
    from malt.deploy.export import export

    assert main(["predict", "--run", str(run), "--data", str(day), "--out",
                 str(out / "p.parquet")]) == 0
    main_view = trained.task.main
    predicted = pq.read_table(out / "p.parquet")[f"p_{main_view}"].to_numpy()
    assert np.abs(predicted - reference[:, trained.views.index(main_view)]).max() <= tolerance
    for fmt in ("onnx", "torchscript"):
        path = out / f"model.{fmt}"
        with warnings.catch_warnings():
            warnings.simplefilter("error", torch.jit.TracerWarning)
            export(trained, path, fmt)
        got = exported_scores(path, fmt, trained, arrays)
        assert np.abs(got - reference).max() <= tolerance, fmt


def service_client(trained: TrainedModel):
    """A FastAPI test client of the service over `trained` (skips without fastapi and httpx);
    use it as a context manager."""
    import pytest

    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from malt.serve.app import create_app
    from malt.serve.model import ServedModel

    model = ServedModel.of_run(trained)
    return TestClient(create_app(model, load=lambda r: model, max_rows=1000, batch_rows=4096,
                                 batch_wait_ms=0.0))


def held_out_moae_run(data: Path, out: Path) -> Path:
    """Train a small MoAE run (last-click, first-click auxiliary) into `out` whose last
    training day is held out, so calibrators can be fitted on it."""
    from malt.jobs.train import train_run

    config = RunConfig.from_dict({
        "seed": 5, "data": {"path": str(data), "eval_split": "validation"},
        "task": {"main": "last", "aux": ["first"]}, "train": {"batch_size": 64},
        "model": {"name": "moae", **SMALL_BLOCKS}})
    train_run(config, out)
    return out
