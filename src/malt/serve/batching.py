"""Dynamic batching: the requests that arrive while the model is busy (or within a short wait)
are gathered into one model call.

One asyncio task takes requests off a queue, up to `batch_rows` rows, and hands them to one
worker thread, which converts their rows together (`malt.serve.convert`; a malformed request
fails alone) and scores them with one model call per calibration choice. The event loop stays
free to take requests while the model runs; the model is only ever used by that one thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import numpy as np

from malt.serve.model import ServedModel
from malt.serve.requests import RequestError, ScoringRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredRows:
    """One request's answer: probabilities [N, V] in `model.outputs` order, the ids per column
    that were out of the vocabs, and the model that scored them."""

    probs: np.ndarray
    oov: dict[str, int]
    model: ServedModel
    calibrated: bool
    """Whether the probabilities went through calibrators (asked, and the model has them)."""


@dataclass
class _Pending:
    request: ScoringRequest
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Scores requests in batches (see the module docstring) with `model`, which `swap`
    replaces between two batches: a batch is scored by one model, and no request is dropped."""

    def __init__(self, model: ServedModel, *, batch_rows: int, wait_s: float):
        self.model, self.batch_rows, self.wait_s = model, batch_rows, wait_s
        self.model_calls = 0
        """Model calls so far (a batch asking both calibrated and raw scores makes two)."""
        self._queue: asyncio.Queue[_Pending | None] | None = None
        self._task: asyncio.Task | None = None
        self._carried: _Pending | None = None

    async def start(self) -> None:
        """Start the worker task (in the running event loop)."""
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._work(), name="malt-batcher")

    async def stop(self) -> None:
        """Score what is queued, then end the worker task."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None

    def swap(self, model: ServedModel) -> ServedModel:
        """Score the next batches with `model`; the model it replaces."""
        old, self.model = self.model, model
        return old

    async def score(self, request: ScoringRequest) -> ScoredRows:
        """The request's scores; raises `RequestError` when its rows break the schema."""
        if self._task is None:
            raise RequestError(503, None, "the service is not running (starting or stopping)")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(request, future))
        return await future

    async def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._carried or await self._queue.get()
            self._carried = None
            if first is None:
                return
            if self.wait_s > 0 and first.request.rows < self.batch_rows and \
                    self._queue.empty():
                await asyncio.sleep(self.wait_s)
            batch, rows = [first], first.request.rows
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                if rows + item.request.rows > self.batch_rows:
                    self._carried = item
                    break
                batch.append(item)
                rows += item.request.rows
            model = self.model
            try:
                results = await asyncio.to_thread(self._score, model, batch)
            except Exception as exc:  # a fault of the service: answer it, keep serving
                log.exception("scoring a batch of %d requests failed", len(batch))
                results = [exc] * len(batch)
            for pending, result in zip(batch, results):
                if pending.future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)

    def _score(self, model: ServedModel, batch: list[_Pending]
               ) -> list[ScoredRows | BaseException]:
        """In the worker thread: convert the requests' rows together (a malformed request
        fails alone), then one model call per calibration choice."""
        results: list[ScoredRows | BaseException] = \
            model.convert([pending.request.table for pending in batch])
        groups: dict[bool, list] = {}
        for i, (pending, converted) in enumerate(zip(batch, results)):
            if isinstance(converted, BaseException):
                continue
            try:
                calibrated = model.calibrated_for(pending.request.calibrated)
            except RequestError as exc:
                results[i] = exc
                continue
            groups.setdefault(calibrated, []).append((i, converted))
        for calibrated, items in groups.items():
            self.model_calls += 1
            probs = model.score([converted for _, converted in items], calibrated)
            for (i, converted), p in zip(items, probs):
                results[i] = ScoredRows(p, converted.oov, model, calibrated)
        return results
