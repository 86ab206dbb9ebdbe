"""The HTTP service (FastAPI): `POST /predict`, `GET /health`, `GET /metadata`,
`GET /metrics` and `POST /admin/reload`.

Every answer is JSON (the metrics: Prometheus text). A request the service refuses gets a 4xx
`{"error": ..., "field": ...}` naming the field at fault; a fault of the service itself a 500
`{"error": ...}` without a traceback (logged), and the service goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from malt.errors import MaltError
from malt.serve.batching import Batcher
from malt.serve.metrics import ServiceMetrics
from malt.serve.model import ServedModel
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
               load: Callable[[str | None], ServedModel] | None = None) -> FastAPI:
    """The service scoring with `model`; `load(run)` loads the model `POST /admin/reload`
    swaps in (the run it names, or None: the one served, read again); without it, reloading
    is refused."""
    batcher = Batcher(model, batch_rows=batch_rows, wait_s=batch_wait_ms / 1000)
    metrics = ServiceMetrics()
    reloading = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
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
        """Load a run (the body's `{"run": DIR}`, or the one served) and swap it in between
        two batches; the requests in flight are scored by the old model."""
        if load is None:
            raise RequestError(403, None, "this service does not reload models")
        body = await request.body()
        try:
            run = json.loads(body).get("run") if body.strip() else None
        except (ValueError, AttributeError) as exc:
            raise RequestError(422, None, 'expected no body or {"run": "<run directory>"}'
                               ) from exc
        if run is not None and not isinstance(run, str):
            raise RequestError(422, "run", "expected a run directory")
        async with reloading:
            try:
                new = await asyncio.to_thread(load, run)
            except MaltError as exc:
                raise RequestError(422, "run", str(exc)) from exc
            old = batcher.swap(new)
        log.info("swapped model %s for %s", old.version, new.version)
        return {"previous": old.version, "version": new.version}

    return app
