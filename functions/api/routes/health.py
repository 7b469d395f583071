"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from functions.api.auth import OPEN_ROUTE, AuthRoute, requires
from functions.api.deps import CacheDep
from functions.api.observability import prometheus_text
from functions.api.schemas import HealthResponse, ReadyResponse, error_responses

router = APIRouter(route_class=AuthRoute, tags=["operations"])

# These routes only read memory, so they are coroutines: a plain ``def`` route waits for a
# thread-pool slot, which under load made /health ~4x slower than /predict (make load).


@router.get("/health", response_model=HealthResponse, openapi_extra=OPEN_ROUTE)
async def health(request: Request, cache: CacheDep) -> HealthResponse:
    """Liveness: 200 while the process runs, with the served models' state."""
    models = cache.health()
    degraded = any(model["degraded"] for model in models)
    return HealthResponse(
        status="degraded" if degraded else "ok",
        degraded=degraded,
        uptime_seconds=round(time.monotonic() - request.app.state.started, 3),
        models=models,
    )


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse}},
    openapi_extra=OPEN_ROUTE,
)
async def ready(cache: CacheDep) -> JSONResponse:
    """Readiness: 503 until every served model has a verified production version loaded.

    ``unavailable`` names the models that have none: they answer 503 while the others serve.
    """
    unavailable = cache.unavailable()
    return JSONResponse(
        {"ready": not unavailable, "unavailable": unavailable},
        status_code=503 if unavailable else 200,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **error_responses(401, 403)},
    openapi_extra=requires("read"),
)
async def prometheus_metrics() -> Response:
    """Prometheus text format: requests, latency, predictions, model loads, refreshes."""
    body, content_type = prometheus_text()
    return Response(content=body, media_type=content_type)
