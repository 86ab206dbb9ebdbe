"""The model a service scores with, loaded once from a finished run (`malt.runs.load.load_run`,
scored through the scorer of `malt predict`) or from an ONNX file of `malt export`
(`malt.deploy.exported.load_export`, run by ONNX Runtime), and what the service says about it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import torch

from malt.data.schema import Schema
from malt.deploy.engines import OnnxEngine
from malt.deploy.exported import ExportedModel, load_export
from malt.deploy.predict import Scorer
from malt.runs.load import TrainedModel, load_run
from malt.serve.convert import ConvertedRows, RequestConverter
from malt.serve.requests import RequestError

SourceKind = Literal["run", "export"]


@dataclass(frozen=True)
class ModelSource:
    """Where a served model was loaded from: a run directory or an exported file."""

    kind: SourceKind
    path: str


Engine = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Converted rows (arrays by serving input name) -> probabilities [N, V]."""


class ServedModel:
    """A model ready to score requests: the converter of their raw rows and one engine per
    calibration choice it offers (True: calibrated; False: the model's own probabilities).

    Not thread-safe: one thread converts and scores (the batcher's worker)."""

    def __init__(self, *, source: ModelSource, version: str, schema: Schema, lookups: dict,
                 engines: dict[bool, Engine], outputs: tuple[str, ...],
                 calibration: dict[str, Any] | None, described: dict[str, Any]):
        self.source, self.version, self.schema = source, version, schema
        self.converter = RequestConverter(schema, lookups)
        self.columns = self.converter.columns
        self.engines, self.outputs, self.calibration = engines, outputs, calibration
        self._described = described

    @classmethod
    def of_run(cls, trained: TrainedModel, *, engine: str = "torch",
               device: torch.device | str = "cpu", precision: str = "fp32") -> ServedModel:
        """A finished run, scored by `engine` in `precision`, calibrated (when it has
        calibrators) or not."""
        engines = {False: Scorer(trained, engine=engine, device=device, calibrated=False,
                                 precision=precision)}
        calibration = trained.calibration
        if calibration is not None:
            engines[True] = Scorer(trained, engine=engine, device=device, calibrated=True,
                                   precision=precision)
        return cls(source=ModelSource("run", str(trained.run.path)),
                   version=model_version(trained), schema=trained.schema,
                   lookups=trained.lookups,
                   engines={c: scorer.score for c, scorer in engines.items()},
                   outputs=engines[False].predicted,
                   calibration=None if calibration is None else {
                       "method": calibration.method, "days": list(calibration.days),
                       "rows": calibration.rows, "by": calibration.by},
                   described={"run": str(trained.run.path),
                              "parent": None if trained.parent is None else trained.parent.path,
                              "export": None, "model": trained.config.model["name"],
                              "engine": engine, "precision": precision,
                              "views": list(trained.views),
                              "main": trained.task.main})

    @classmethod
    def of_export(cls, exported: ExportedModel, *, device: torch.device | str = "cpu"
                  ) -> ServedModel:
        """An ONNX export run by ONNX Runtime: calibrated when its graph holds calibrators,
        else not, as exported."""
        description = exported.description
        engine = OnnxEngine(exported.data, exported.input_names, torch.device(device))
        calibration = description["calibration"]
        return cls(source=ModelSource("export", str(exported.path)),
                   version=f"{exported.path.stem}-{exported.sha256[:12]}",
                   schema=exported.schema, lookups=exported.lookups,
                   engines={exported.calibrated: engine}, outputs=exported.output_names,
                   calibration=None if calibration is None else {
                       k: calibration[k] for k in ("method", "days", "rows", "by")},
                   # exports written before the parent was described have none
                   described={"run": description["run"],
                              "parent": description.get("parent"),
                              "export": str(exported.path), "model": description["model"],
                              "engine": "onnx", "precision": "fp32",
                              "views": list(description["views"]),
                              "main": description["main"]})

    @classmethod
    def load(cls, source: ModelSource, *, vocabs: str | None = None, engine: str = "torch",
             device: torch.device | str = "cpu", precision: str = "fp32") -> ServedModel:
        """The model at `source` (`engine` scores a run in `precision`; an export is run by
        ONNX Runtime)."""
        if source.kind == "run":
            return cls.of_run(load_run(source.path, vocabs=vocabs), engine=engine,
                              device=device, precision=precision)
        return cls.of_export(load_export(source.path, vocabs=vocabs), device=device)

    def calibrated_for(self, asked: bool) -> bool:
        """Whether a request asking (or not) for calibrated probabilities gets them: when
        asked and the model has calibrators. A `RequestError` when not asked and the model has
        no uncalibrated scores (an export whose graph holds its calibrators)."""
        if asked:
            return True in self.engines
        if False not in self.engines:
            raise RequestError(422, "calibrated", "this service scores an exported file whose "
                               "graph holds the calibrators: it has no uncalibrated "
                               "probabilities (export with --uncalibrated, or serve the run)")
        return False

    def convert(self, tables: list[pa.Table]) -> list[ConvertedRows | Exception]:
        """The requests' rows checked and converted as `malt predict` converts a file's; a
        `RequestError` naming the column for those that break the schema."""
        return self.converter.convert(tables)

    def score(self, chunks: list[ConvertedRows], calibrated: bool) -> list[np.ndarray]:
        """Probabilities [N_i, V] of each converted request, all scored in one pass."""
        arrays = chunks[0].arrays if len(chunks) == 1 else \
            {name: np.concatenate([c.arrays[name] for c in chunks]) for name in chunks[0].arrays}
        probs = self.engines[calibrated](arrays)
        ends = np.cumsum([c.rows for c in chunks])[:-1]
        return np.split(probs, ends)

    def metadata(self) -> dict:
        """What `GET /metadata` answers: version, run, parent run, export, model, engine,
        views, outputs, calibrators and schema."""
        schema = self.schema
        return {
            "version": self.version, **self._described, "outputs": list(self.outputs),
            "calibration": self.calibration,
            "schema": {
                "name": schema.name,
                "columns": list(self.columns),
                "user_column": schema.user_column,
                "fields": [f.name for f in schema.fields],
                "id_sequences": {s.name: s.length for s in schema.id_sequences},
                # The lengths alone do not tell a client that shorter or longer rows are taken.
                "ragged_sequences": schema.ragged_sequences,
                "length_columns": {s.name: s.length_column for s in schema.id_sequences
                                   if s.length_column},
                "float_sequences": {s.name: s.length for s in schema.float_sequences},
                "numeric": [f.name for f in schema.numeric],
                "bags": {b.name: b.max_length for b in schema.bags},
                "target_action_column": schema.target_action_column,
            },
        }


def model_version(trained: TrainedModel) -> str:
    """`<run directory name>-<12 hex digits>`: the digits hash the checkpoint and the
    calibrators, so a retrained or recalibrated run in the same directory is another version."""
    digest = hashlib.sha256()
    for path in (trained.run.checkpoint, trained.run.calibration_file):
        if path.is_file():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return f"{trained.run.path.name}-{digest.hexdigest()[:12]}"
