"""Trained-model objects for the deploy tests, without training (random weights suffice to
compare an export with the eager model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from malt.data.lookups import load_lookups, vocab_info
from malt.data.reader import DayConverter, array_shapes, open_parquet, read_chunks
from malt.data.schema import Schema
from malt.data.task import CAT, Task
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
