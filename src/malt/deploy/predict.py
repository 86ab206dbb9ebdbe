"""Score rows that have no labels: day files or an in-memory table -> one probability per
predicted view, converted, scored and written one chunk (a row group) at a time.

The output has one column `p_<view>` per predicted view (through the run's calibrators when it
has some, unless asked not to), then the raw user column and the
columns asked to be kept, in the input's row order (files in name order). Raw ids go through
the run's vocabs; ids they do not hold get the out-of-vocabulary row and are counted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from malt.data.ahead import read_ahead
from malt.data.layout import find_layout, natural_key
from malt.data.reader import (
    READ_CHUNK_ROWS,
    DayConverter,
    RowGroup,
    array_shapes,
    check_columns,
    chunk_column,
    open_parquet,
    read_chunks,
)
from malt.deploy.engines import make_engine
from malt.deploy.serving import ServingModule, output_name
from malt.errors import ConfigError, DataError
from malt.eval.predictions import Predictions
from malt.eval.report import evaluate, evaluate_by_day
from malt.metrics import ViewMetrics
from malt.outputs import atomic_write, single_file_output
from malt.provenance import provenance
from malt.runs.load import TrainedModel

PREDICTIONS_KEY = "malt"
"""Key of the prediction file's parquet metadata that records where it comes from; malt
replaces (`--overwrite`) only a file that has it."""
PREDICT_BATCH_ROWS = 4096
"""Rows scored per model call: large enough that per-call overheads vanish, small enough that a
batch's activations (a few MB) stay in the CPU's caches (BENCHMARKS.md "predict profile")."""
CONVERT_AHEAD = False
"""Whether `Scorer` converts the next chunk while it scores the current one by default. Not on
a machine whose cores the model's threads fill: the conversion then takes a core from one of
the model's threads, and the other waits for it at each operator (BENCHMARKS.md "predict
profile"); converting with as many threads as the model between its calls costs less."""


@dataclass(frozen=True)
class Source:
    """One input: a parquet file (or an in-memory table written as one) and its name."""

    name: str
    file: pq.ParquetFile
    path: Path
    buffer: pa.Buffer | None = None
    """The parquet bytes of an in-memory table (`table_source`)."""

    @property
    def rows(self) -> int:
        return self.file.metadata.num_rows

    def reopen(self) -> pq.ParquetFile:
        """Another handle on the same rows, for a thread of its own."""
        if self.buffer is not None:
            return pq.ParquetFile(pa.BufferReader(self.buffer), metadata=self.file.metadata)
        return open_parquet(self.path, self.file.metadata)


@dataclass(frozen=True)
class ConvertedChunk:
    """One chunk ready to score: its arrays, OOV counts per column and the columns passed
    through to the output."""

    arrays: dict[str, np.ndarray]
    oov: dict[str, int]
    passed: list[pa.Array]


@dataclass(frozen=True)
class PredictProgress:
    rows: int
    total_rows: int
    seconds: float
    finished: bool


@dataclass
class PredictReport:
    """What a prediction did: rows scored, OOV ids per column, time, and the metrics with
    `evaluate`."""

    rows: int
    sources: int
    oov: dict[str, int]
    seconds: float
    metrics: dict[str, ViewMetrics] | None = None
    per_day: dict[str, dict[str, ViewMetrics]] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def scoring_files(data: str | Path) -> list[Path]:
    """The files to score: a parquet file; the test days of a MAC-layout directory; or every
    `*.parquet` file of any other directory, in name order."""
    path = Path(data)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError("no such file or directory", file=str(path))
    if (path / "train").is_dir() or (path / "test").is_dir():
        layout = find_layout(path, vocabs=False)
        if not layout.test:
            raise DataError("a MAC-layout directory without test days (test/*.parquet): name "
                            "the files to score", file=str(path))
        return list(layout.test)
    files = sorted(path.glob("*.parquet"), key=natural_key)
    if not files:
        raise DataError("no *.parquet files to score", file=str(path))
    return files


def file_sources(data: str | Path) -> list[Source]:
    return [Source(str(p), open_parquet(p), p) for p in scoring_files(data)]


def table_source(table: pa.Table, name: str = "<table>") -> Source:
    """An in-memory table as a source: written once as parquet in memory, so that it is read
    and checked exactly as a file is."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=READ_CHUNK_ROWS)
    buffer = sink.getvalue()
    return Source(name, pq.ParquetFile(pa.BufferReader(buffer)), Path(name), buffer)


class Scorer:
    """Converts and scores sources with a trained model (see the module docstring).

    Args:
        trained: the loaded run.
        engine: `torch` (the eager model) or `onnx` (ONNX Runtime).
        device: where the model runs.
        keep: input columns copied to the output.
        evaluate: also read the labels and compute the evaluation metrics.
        batch_size: rows per model call.
        calibrated: score through the run's calibrators when it has some (`malt calibrate`).
        precision: `fp32`, or `bf16` for the torch engine's forward pass under bfloat16
            autocast (`malt.precision`).
        convert_threads: threads that decode and convert the columns of a chunk side by side
            (default: the model's torch threads); 1 converts them one after the other.
        ahead: convert the next chunk while the current one is scored (`malt.data.ahead`),
            else between model calls, when the model leaves the cores free (BENCHMARKS.md
            "predict profile").
    """

    def __init__(self, trained: TrainedModel, *, engine: str = "torch",
                 device: torch.device | str = "cpu", keep: tuple[str, ...] = (),
                 evaluate: bool = False, batch_size: int = PREDICT_BATCH_ROWS,
                 calibrated: bool = True, precision: str = "fp32",
                 convert_threads: int | None = None, ahead: bool = CONVERT_AHEAD):
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        self.convert_threads = torch.get_num_threads() if convert_threads is None \
            else convert_threads
        if self.convert_threads < 1:
            raise ConfigError(f"conversion threads must be positive, got {convert_threads}")
        self.ahead = ahead
        self.trained, self.evaluate, self.batch_size = trained, evaluate, batch_size
        schema = trained.schema
        self.predicted = tuple(output_name(v) for v in trained.views)
        clash = [c for c in keep if c in self.predicted]
        if clash:
            raise ConfigError(f"kept column(s) {clash} would collide with the prediction columns")
        self.passed = tuple(dict.fromkeys((schema.user_column, *keep)))
        self.converter = DayConverter(schema, trained.lookups, labels=evaluate)
        self.calibration = trained.calibration if calibrated else None
        serving = ServingModule(trained.model, self.calibration)
        self.inputs = serving.input_names
        self.engine = make_engine(engine, serving, torch.device(device), precision)

    def check(self, sources: list[Source]) -> pa.Schema:
        """Check every source before anything is scored or written; the output's schema."""
        schema = self.trained.schema
        types: dict[str, pa.DataType] = {}
        for source in sources:
            check_columns(schema, source.file, source.name, labels=self.evaluate)
            present = source.file.schema_arrow
            for column in self.passed:
                if column not in present.names:
                    raise DataError("missing column (asked to keep it)", file=source.name,
                                    column=column)
                dtype = present.field(column).type
                if types.setdefault(column, dtype) != dtype:
                    raise DataError(f"type {dtype} differs from {types[column]} in "
                                    f"{sources[0].name}", file=source.name, column=column)
        fields = [pa.field(c, pa.float32()) for c in self.predicted]
        return pa.schema(fields + [pa.field(c, types[c]) for c in self.passed])

    def batches(self, sources: list[Source],
                progress: Callable[[PredictProgress], None] | None = None
                ) -> Iterator[pa.RecordBatch]:
        """The output rows of `sources`, one record batch per chunk; `self.report` holds the
        counts (and metrics) once the iterator is exhausted."""
        out_schema = self.check(sources)
        total = sum(s.rows for s in sources)
        start, done = time.perf_counter(), 0
        oov: dict[str, int] = {}
        collected: dict[str, list[np.ndarray]] = {"probs": [], "weights": [], "user": [],
                                                  "click": []}
        for chunk in self._converted(sources):
            for column, n in chunk.oov.items():
                oov[column] = oov.get(column, 0) + n
            probs = self.score(chunk.arrays)
            if self.evaluate:
                collected["probs"].append(probs)
                collected["weights"].append(chunk.arrays["weights"])
                collected["user"].append(chunk.arrays["user"])
                if "click" in chunk.arrays:  # impression logs: views are scored on clicks
                    collected["click"].append(chunk.arrays["click"])
            done += len(probs)
            yield pa.record_batch([pa.array(probs[:, j]) for j in range(probs.shape[1])]
                                  + chunk.passed, schema=out_schema)
            if progress is not None:
                progress(PredictProgress(done, total, time.perf_counter() - start,
                                         done == total))
        self.report = PredictReport(rows=done, sources=len(sources), oov=oov,
                                    seconds=time.perf_counter() - start)
        if self.evaluate and done:
            self._add_metrics(sources, collected)

    def _converted(self, sources: list[Source]) -> Iterator[ConvertedChunk]:
        """The chunks of `sources` read and converted, in order, by `convert_threads` threads;
        with `ahead`, the next one while the caller scores the current one, so at most two
        chunks are held at a time (one without)."""
        pool = ThreadPoolExecutor(self.convert_threads, thread_name_prefix="malt-convert") \
            if self.convert_threads > 1 else None
        try:
            chunks = (self._convert(*chunk, pool) for chunk in self._chunks(sources))
            yield from read_ahead(chunks, name="malt-ahead") if self.ahead else chunks
        finally:
            if pool is not None:
                # An interrupted conversion's remaining columns are dropped, not converted.
                pool.shutdown(wait=True, cancel_futures=True)

    def _chunks(self, sources: list[Source]
                ) -> Iterator[tuple[Source, int, RowGroup | pa.RecordBatch]]:
        columns = list(dict.fromkeys([*self.converter.columns, *self.passed]))
        for source in sources:
            first_row = 0
            for group in range(source.file.metadata.num_row_groups):
                for offset, chunk in read_chunks(source.file, source.path, group, first_row,
                                                 columns, source.reopen):
                    yield source, offset, chunk
                first_row += source.file.metadata.row_group(group).num_rows

    def _convert(self, source: Source, offset: int, chunk: RowGroup | pa.RecordBatch,
                 pool: ThreadPoolExecutor | None = None) -> ConvertedChunk:
        arrays = {name: np.empty(shape, dtype) for name, (shape, dtype) in
                  array_shapes(self.trained.schema, chunk.num_rows,
                               labels=self.evaluate).items()}
        stats = self.converter.convert(chunk, offset, source.name, arrays, pool)
        return ConvertedChunk(arrays, stats.oov, [chunk_column(chunk, c) for c in self.passed])

    def score(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Probabilities [N, V] of converted rows, `batch_size` rows per model call."""
        rows = len(arrays["sparse"])
        parts = [self.engine({n: arrays[n][lo:lo + self.batch_size] for n in self.inputs})
                 for lo in range(0, rows, self.batch_size)]
        return np.concatenate(parts) if parts else \
            np.zeros((0, len(self.predicted)), dtype=np.float32)

    def _add_metrics(self, sources: list[Source], collected: dict[str, list[np.ndarray]]
                     ) -> None:
        schema = self.trained.schema
        predictions = Predictions(
            views=self.trained.views, labels=schema.labels,
            probs=np.concatenate(collected["probs"]).astype(np.float32),
            weights=np.concatenate(collected["weights"]),
            user=np.concatenate(collected["user"]).astype(np.int64),
            days=tuple(s.path.stem for s in sources), day_rows=tuple(s.rows for s in sources),
            click=np.concatenate(collected["click"]) if collected.get("click") else None)
        self.report.metrics = evaluate(predictions)
        self.report.per_day = evaluate_by_day(predictions)


def predict_file(scorer: Scorer, sources: list[Source], out: str | Path, *,
                 overwrite: bool = False,
                 progress: Callable[[PredictProgress], None] | None = None) -> PredictReport:
    """Score `sources` into the parquet file `out`, written atomically (an interrupted run
    leaves no partial file); returns the report. An existing `out` is replaced only with
    `overwrite`, and only when malt wrote it (`written_by_malt`)."""
    out = Path(out)
    with single_file_output({out: written_by_malt}, overwrite=overwrite):
        calibration = scorer.calibration
        record = json.dumps({"kind": "predictions", "run": str(scorer.trained.run.path),
                             "calibration": None if calibration is None else calibration.method,
                             **provenance()}, allow_nan=False)
        out_schema = scorer.check(sources).with_metadata({PREDICTIONS_KEY: record})

        def write(tmp: Path) -> None:
            with pq.ParquetWriter(tmp, out_schema, compression="zstd") as writer:
                for batch in scorer.batches(sources, progress):
                    writer.write_batch(batch)

        atomic_write(out, write)
    return scorer.report


def written_by_malt(path: Path) -> bool:
    """Whether `path` is a prediction file malt wrote (its parquet metadata says so)."""
    try:
        metadata = pq.read_metadata(path).metadata or {}
    except (OSError, ValueError, pa.ArrowException):
        return False
    return PREDICTIONS_KEY.encode() in metadata
