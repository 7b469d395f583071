"""The FastAPI app, the Lambda handler and the ASGI app.

    create_app(settings)  -> a new app (tests build their own)
    app                   -> the process's app, built on first access (``functions.api.main:app``)
    handler               -> Mangum(app, lifespan="off") for Lambda (``functions.api.main.handler``)

``app`` and ``handler`` are built on first access rather than at import, so that importing this
module (tests, tools) reads no environment and loads no model; the Lambda runtime and uvicorn
access them during the init phase, which is where the models are loaded and warmed up.
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from functions.api import docs, errors, ui
from functions.api.auth import AuthRoute, document_security, load_keys
from functions.api.model_cache import ModelCache
from functions.api.observability import (
    METRICS,
    RequestMiddleware,
    configure_request_log,
    logger,
    metrics,
    on_lambda,
)
from functions.api.redaction import Redactor, storage_names
from functions.api.routes import experiments, health, histories, models, predict
from functions.api.schemas import error_responses
from functions.api.settings import ApiSettings, get_settings
from tracking import ExperimentLogger, ModelRegistry
from tracking.backends import build_stores

DESCRIPTION = """
Predictions from the production churn model, and the experiment tracker and model registry
behind it. Send your key in the `X-API-Key` header; `/health`, `/ready` and these docs are open.
"""


def create_app(settings: ApiSettings) -> FastAPI:
    """Build the app: stores, keys, model cache (loaded now unless told not to), routes."""
    store, artifacts = build_stores(settings.tracking_config())
    registry = ModelRegistry(store=store, artifact_store=artifacts)
    tracking_logger = ExperimentLogger(metadata_store=store, artifact_store=artifacts)
    cache = ModelCache(
        registry,
        settings.served_models,
        refresh_seconds=settings.model_refresh_seconds,
        cache_dir=settings.cache_dir(),
        allow_pickle=settings.allow_pickle_models,
    )
    app = FastAPI(
        title="ML tracking and churn prediction API",
        version="1.0.0",
        description=DESCRIPTION,
        # FastAPI's own pages load their assets from a CDN; functions/api/docs.py serves ours.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # A path that only misses its route by a trailing slash is a 404, not a redirect built
        # from the request's Host header.
        redirect_slashes=False,
    )
    # Routes added to the app itself get auth too (the routers declare AuthRoute themselves).
    app.router.route_class = AuthRoute
    _document_security(app)
    if settings.docs_enabled:
        docs.install(app)
    configure_request_log()
    app.state.settings = settings
    app.state.keyring = load_keys(settings)
    app.state.registry = registry
    app.state.logger = tracking_logger
    app.state.model_cache = cache
    app.state.started = time.monotonic()
    app.state.redact = Redactor(storage_names(store, artifacts))
    app.state.idempotency = store
    errors.install(app)
    common = (401, 403, 413, 422, 500)
    for router, codes in (
        (predict.router, (*common, 404, 503)),
        (models.router, (*common, 404, 409, 503)),
        (experiments.router, (*common, 404, 503)),
        (histories.router, (*common, 404, 503)),
        (health.router, (500,)),
    ):
        app.include_router(router, responses=error_responses(*codes))
    ui.install(app, settings)
    app.add_middleware(
        RequestMiddleware,
        max_body=settings.max_body_bytes,
        max_batch_body=settings.max_batch_body_bytes,
    )
    if not len(app.state.keyring):
        logger.warning("no API keys configured: every route but /health and /ready answers 401")
    if settings.load_models_on_start:
        cache.start()
    return app


def _document_security(app: FastAPI) -> None:
    """Show the key scheme in the schema (``AuthRoute`` reads the header itself)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_security(build())
            # Bodies the prediction routes parse themselves (see routes/predict.py).
            _, definitions = models_json_schema(
                [(model, "validation") for model in predict.BODY_MODELS],
                ref_template="#/components/schemas/{model}",
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in definitions.get("$defs", {}).items():
                schemas.setdefault(name, definition)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@functools.cache
def _app() -> FastAPI:
    METRICS.cold_starts.inc()
    return create_app(get_settings())


@functools.cache
def _handler() -> Any:
    from mangum import Mangum
    from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

    # lifespan="off": Mangum would otherwise run startup/shutdown around every invocation.
    # The docs' SVG favicon is text: without it in the text types Mangum would base64 it, and a
    # REST API without binary media types would hand the browser the base64 text.
    mangum = Mangum(
        _app(), lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "image/svg+xml"]
    )
    if not on_lambda():
        return mangum
    from aws_lambda_powertools.logging import correlation_paths

    # One invocation at a time per environment, so the correlation id can live on the logger.
    with_context = logger.inject_lambda_context(
        mangum, correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
    )
    # EMF metrics (with the cold-start metric) flushed at the end of each invocation.
    with_metrics = metrics.log_metrics(with_context, capture_cold_start_metric=True)

    def handler(event: dict[str, Any], context: Any) -> Any:
        with warnings.catch_warnings():
            # Health checks and reads add no metric; Powertools warns about that on every one.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            return with_metrics(event, context)

    return handler


def __getattr__(name: str) -> Any:
    if name == "app":
        return _app()
    if name == "handler":
        return _handler()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
