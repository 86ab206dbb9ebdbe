"""The model a service scores with: a run loaded once (`malt.runs.load.load_run`), scoring
requests through the scorer of `malt predict`, and what the service says about it."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from malt.data.reader import read_columns
from malt.deploy.predict import ConvertedChunk, Scorer, table_source
from malt.errors import DataError
from malt.runs.load import TrainedModel, load_run
from malt.serve.requests import RequestError, ScoringRequest

REQUEST = "request"
"""The name a request's rows are read under, as a file's name would be."""


class ServedModel:
    """A finished run ready to score requests: the scorers of `malt predict`, calibrated (when
    the run has calibrators) and not.

    Not thread-safe: one thread converts and scores (the batcher's worker)."""

    def __init__(self, trained: TrainedModel, *, engine: str = "torch",
                 device: torch.device | str = "cpu", precision: str = "fp32"):
        self.trained, self.engine_name, self.precision = trained, engine, precision
        self.raw = Scorer(trained, engine=engine, device=device, calibrated=False,
                          precision=precision)
        self.calibrated = self.raw if trained.calibration is None else \
            Scorer(trained, engine=engine, device=device, calibrated=True, precision=precision)
        self.outputs = self.raw.predicted
        self.columns = read_columns(trained.schema, labels=False)
        self.version = model_version(trained)

    @classmethod
    def load(cls, run: str, *, vocabs: str | None = None, engine: str = "torch",
             device: torch.device | str = "cpu", precision: str = "fp32") -> ServedModel:
        return cls(load_run(run, vocabs=vocabs), engine=engine, device=device,
                   precision=precision)

    def scorer(self, calibrated: bool) -> Scorer:
        return self.calibrated if calibrated else self.raw

    def convert(self, request: ScoringRequest) -> ConvertedChunk:
        """The request's rows checked and converted as `malt predict` converts a file's;
        a `RequestError` naming the column when they break the run's schema."""
        try:
            return self.raw.convert(table_source(request.table, REQUEST))
        except DataError as exc:
            # "file request, column 'x', row 3: ..." -> "column 'x', row 3: ..."
            message = str(exc).removeprefix(f"file {REQUEST}").lstrip(",: ")
            raise RequestError(422, exc.column, message) from exc

    def score(self, chunks: list[ConvertedChunk], calibrated: bool) -> list[np.ndarray]:
        """Probabilities [N_i, V] of each converted request, all scored in one pass."""
        scorer = self.scorer(calibrated)
        arrays = {name: np.concatenate([c.arrays[name] for c in chunks])
                  for name in scorer.inputs}
        probs = scorer.score(arrays)
        ends = np.cumsum([len(c.arrays["sparse"]) for c in chunks])[:-1]
        return np.split(probs, ends)

    def metadata(self) -> dict:
        """What `GET /metadata` answers: version, parent run, views, calibrators, schema."""
        trained, schema = self.trained, self.trained.schema
        calibration = trained.calibration
        return {
            "version": self.version,
            "run": str(trained.run.path),
            "parent": None if trained.parent is None else trained.parent.path,
            "model": trained.config.model["name"],
            "engine": self.engine_name,
            "precision": self.precision,
            "views": list(trained.views),
            "main": trained.task.main,
            "outputs": list(self.outputs),
            "calibration": None if calibration is None else {
                "method": calibration.method, "days": list(calibration.days),
                "rows": calibration.rows, "by": calibration.by},
            "schema": {
                "name": schema.name,
                "columns": list(self.columns),
                "user_column": schema.user_column,
                "fields": [f.name for f in schema.fields],
                "id_sequences": {s.name: s.length for s in schema.id_sequences},
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
