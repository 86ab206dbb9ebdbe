"""The HTTP service (FastAPI): `POST /predict`, `GET /health`, `GET /metadata`,
`GET /metrics` and `POST /admin/reload` (and, in a service started by `malt serve`, SIGHUP:
the same reload of the model served).

Every answer is JSON (the metrics: Prometheus text). A request the service refuses gets a 4xx
`{"error": ..., "field": ...}` naming the field at fault; a fault of the service itself a 500
`{"error": ...}` without a traceback (logged), and the service goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from malt.errors import MaltError
from malt.serve.batching import Batcher
from malt.serve.metrics import ServiceMetrics
from malt.serve.model import ModelSource, ServedModel
from malt.serve.requests import (
    ARROW_STREAM,
    RequestError,
    parse_arrow_request,
    parse_request,
)

log = logging.getLogger(__name__)

PATHS = ("/predict", "/health", "/metadata", "/metrics", "/admin/reload")
"""The service's paths; the metrics count any other under `other`."""


def create_app(model: ServedModel, *, max_rows: int, batch_rows: int, batch_wait_ms: float,
               load: Callable[[ModelSource], ServedModel] | None = None,
               reload_on_hangup: bool = False) -> FastAPI:
    """The service scoring with `model`; `load(source)` loads the model a reload swaps in
    (`POST /admin/reload`, and SIGHUP with `reload_on_hangup`, which needs the event loop of
    the main thread); without it, reloading is refused."""
    batcher = Batcher(model, batch_rows=batch_rows, wait_s=batch_wait_ms / 1000)
    metrics = ServiceMetrics()
    reloading = asyncio.Lock()

    async def reload_model(source: ModelSource | None) -> tuple[ServedModel, ServedModel]:
        """Load `source` (None: the source of the model served, read again) and swap it in
        between two batches; (old, new). The requests in flight are scored by the old model;
        one that cannot be loaded leaves it in place."""
        async with reloading:
            new = await asyncio.to_thread(load, source or batcher.model.source)
            old = batcher.swap(new)
        log.info("swapped model %s for %s", old.version, new.version)
        return old, new

    async def reload_on_signal() -> None:
        """SIGHUP: reload the model served; a failed reload keeps it, and the log says why."""
        served = batcher.model
        try:
            await reload_model(None)
        except MaltError as exc:
            log.error("SIGHUP: reloading %s failed, still serving %s: %s", served.source.path,
                      served.version, exc)
        except Exception:
            log.exception("SIGHUP: reloading %s failed, still serving %s", served.source.path,
                          served.version)

    signalled: set[asyncio.Task] = set()  # held until done (the loop keeps weak references)

    def hung_up() -> None:
        task = asyncio.ensure_future(reload_on_signal())
        signalled.add(task)
        task.add_done_callback(signalled.discard)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        hangup = reload_on_hangup and load is not None
        if hangup:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hung_up)
        yield
        if hangup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # stopping: no reload, no death
        await batcher.stop()  # after the server has answered the requests in flight

    app = FastAPI(title="malt scoring service", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.batcher, app.state.metrics = batcher, metrics

    @app.middleware("http")
    async def count_and_contain(request: Request, call_next) -> Response:
        start = time.perf_counter()
        metrics.in_flight += 1
        try:
            response = await call_next(request)
        except Exception:  # a fault of the service: answered and logged, never a traceback
            log.exception("%s %s failed", request.method, request.url.path)
            response = JSONResponse({"error": "internal error (see the service's log)",
                                     "field": None}, status_code=500)
        finally:
            metrics.in_flight -= 1
        path = request.url.path if request.url.path in PATHS else "other"
        metrics.observe_request(path, response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body, columns = await request.body(), batcher.model.columns
        if request.headers.get("content-type", "").startswith(ARROW_STREAM):
            parsed = parse_arrow_request(body, columns, max_rows,
                                         request.query_params.get("calibrated"))
        else:
            parsed = parse_request(body, columns, max_rows)
        scored = await batcher.score(parsed)
        metrics.observe_scored(parsed.rows, scored.oov)
        return JSONResponse({
            "version": scored.model.version,
            "calibrated": scored.calibrated,
            "rows": parsed.rows,
            "predictions": {name: scored.probs[:, j].tolist()
                            for j, name in enumerate(scored.model.outputs)},
            "oov": scored.oov})

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "version": batcher.model.version}

    @app.get("/metadata")
    async def metadata() -> dict:
        return batcher.model.metadata()

    @app.get("/metrics")
    async def exposition() -> PlainTextResponse:
        return PlainTextResponse(metrics.text(batcher.model_calls, batcher.model.version),
                                 media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload")
    async def reload(request: Request) -> dict:
        """Load a run or an exported file (the body's `{"run": DIR}` or `{"export": FILE}`,
        or without a body the one served, read again) and swap it in between two batches."""
        if load is None:
            raise RequestError(403, None, "this service does not reload models")
        source = reload_source(await request.body()) or batcher.model.source
        try:
            old, new = await reload_model(source)
        except MaltError as exc:
            raise RequestError(422, source.kind, str(exc)) from exc
        return {"previous": old.version, "version": new.version}

    return app


def reload_source(body: bytes) -> ModelSource | None:
    """The model a reload request's body names: `{"run": DIR}`, `{"export": FILE}`, or
    None for no body."""
    if not body.strip():
        return None
    expected = 'expected no body, {"run": "<run directory>"} or {"export": "<exported file>"}'
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise RequestError(422, None, expected) from exc
    if not isinstance(payload, dict) or len(payload) != 1 or \
            not {"run", "export"} >= payload.keys():
        raise RequestError(422, None, expected)
    (kind, path), = payload.items()
    if not isinstance(path, str):
        raise RequestError(422, kind, "expected a path")
    return ModelSource(kind, path)
