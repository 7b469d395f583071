"""The FastAPI app, the Lambda handler and the ASGI app.

    create_app(settings)  -> a new app (tests build their own)
    app                   -> the process's app, built on first access (``functions.api.main:app``)
    handler               -> Mangum(app, lifespan="off") for Lambda (``functions.api.main.handler``)

``app`` and ``handler`` are built on first access rather than at import, so that importing this
module (tests, tools) reads no environment and loads no model; the Lambda runtime and uvicorn
access them during the init phase, which is where the models are loaded and warmed up.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import AsyncIterator
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
from functions.api.prediction_log import PredictionLog, prediction_records
from functions.api.redaction import Redactor, storage_names
from functions.api.routes import (
    experiments,
    health,
    histories,
    models,
    monitoring,
    predict,
    traffic,
)
from functions.api.schemas import error_responses
from functions.api.settings import ApiSettings, get_settings
from functions.api.shadow import ShadowScorer
from models.catalog import package
from tracking import ExperimentLogger, ModelRegistry
from tracking.backends import build_stores

DESCRIPTION = """
Predictions from the production version of every served model (churn, the documentation
retriever `rag`, and any registered model listed in `SERVED_MODELS`), and the experiment tracker
and model registry behind them. Send your key in the `X-API-Key` header; `/health`, `/ready`
and these docs are open.
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
    prediction_log = PredictionLog(
        artifacts,
        enabled=settings.prediction_log_enabled,
        sample_rate=settings.prediction_log_sample_rate,
        include_features=settings.prediction_log_features,
        buffer_size=settings.prediction_log_buffer_size,
        batch_size=settings.prediction_log_batch_size,
        flush_seconds=settings.prediction_log_flush_seconds,
        publish_emf=on_lambda(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # On Lambda (lifespan off) the log's thread starts with its first record instead, and
        # each invocation flushes it (see functions/api/prediction_log.py).
        if settings.prediction_log_enabled:
            prediction_log.start()
        try:
            yield
        finally:
            prediction_log.close(timeout=settings.prediction_log_flush_timeout_seconds + 2.0)

    app = FastAPI(
        lifespan=lifespan,
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
    configure_request_log()
    app.state.settings = settings
    app.state.keyring = load_keys(settings)
    app.state.registry = registry
    app.state.logger = tracking_logger
    app.state.model_cache = cache
    app.state.shadow = ShadowScorer(sink=functools.partial(_log_shadow, prediction_log))
    app.state.prediction_log = prediction_log
    app.state.started = time.monotonic()
    app.state.redact = Redactor(storage_names(store, artifacts))
    app.state.idempotency = store
    errors.install(app)
    if settings.load_models_on_start:
        # Before the routes: each served model's operation is typed from what was loaded.
        cache.start()
    common = (401, 403, 413, 422, 500)
    # On the app's router, first: the hot path matches the first routes it tries.
    app.state.body_models = predict.add_routes(
        app.router,
        ((name, cache.served_model(name) or package(name)) for name in settings.served_models),
        error_responses(*common, 404, 503),
    )
    if settings.docs_enabled:
        docs.install(app)
    for router, codes in (
        (models.router, (*common, 404, 409, 503)),
        (traffic.router, (*common, 404, 409, 503)),
        (experiments.router, (*common, 404, 503)),
        (histories.router, (*common, 404, 503)),
        (monitoring.router, (*common, 404, 503)),
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
    return app


def _log_shadow(
    prediction_log: PredictionLog,
    name: str,
    alias: str,
    answers: list[dict[str, Any]],
    rows: list[Any],
    request_ids: list[str],
) -> None:
    """Shadow answers go to the prediction log under their alias, marked as never served."""
    records = []
    for answer, row, request_id in zip(answers, rows, request_ids, strict=True):
        built = prediction_records(request_id=request_id, model=name, variant=alias,
                                   answers=[answer], rows=[row],
                                   include_features=prediction_log.include_features)  # fmt: skip
        for record in built:
            record["shadow"] = True
        records.extend(built)
    prediction_log.record(records)


def _document_security(app: FastAPI) -> None:
    """Show the key scheme in the schema (``AuthRoute`` reads the header itself)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_security(build())
            # Bodies the prediction routes parse themselves (see routes/predict.py).
            _, definitions = models_json_schema(
                [(model, "validation") for model in app.state.body_models],
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

    app = _app()
    flush_timeout = app.state.settings.prediction_log_flush_timeout_seconds

    def handler(event: dict[str, Any], context: Any) -> Any:
        with warnings.catch_warnings():
            # Health checks and reads add no metric; Powertools warns about that on every one.
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            answer = with_metrics(event, context)
        # The environment freezes once this returns, the log's writer thread with it: write the
        # invocation's records now, waiting no longer than the bound (instant when none).
        app.state.prediction_log.flush(flush_timeout)
        return answer

    return handler


def __getattr__(name: str) -> Any:
    if name == "app":
        return _app()
    if name == "handler":
        return _handler()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
