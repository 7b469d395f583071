"""Churn predictions from the cached production version (or a pinned candidate).

This is the hot path, trimmed with ``bench/serving_bench.py --profile``: each FastAPI parameter
or dependency is another round of dependency solving, which cost more than the prediction
itself. So the routes take only the body and the request: the model cache and settings come from
the app state, the body is parsed by pydantic straight from its bytes and the two optional query
parameters here (both declared for the docs in ``openapi_extra``), and the answer is serialised
once, from plain dicts. Validation is the same ``ChurnFeatures`` schema, errors the same 422s.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from functions.api.auth import AuthRoute, requires
from functions.api.errors import ApiError
from functions.api.model_cache import ModelCache
from functions.api.observability import (
    lambda_configured,
    metrics,
    prediction_counter,
    publish_predictions_by_risk,
)
from functions.api.schemas import ChurnBatchRequest, ChurnBatchResponse
from functions.api.settings import ApiSettings
from models.base import Predictor
from models.churn import MODEL_NAME
from models.churn.features import ChurnFeatures
from models.churn.predictor import ChurnPrediction
from tracking.validation import NAME_PATTERN

router = APIRouter(route_class=AuthRoute, prefix="/predict", tags=["predict"])

MAX_VERSION = 10**9
_VERSION = re.compile(r"^[0-9]{1,10}$")
PIN_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "alias",
        "in": "query",
        "required": False,
        "description": "Score with the version this alias points at (e.g. staging).",
        "schema": {"type": "string", "pattern": NAME_PATTERN.pattern, "maxLength": 128},
    },
    {
        "name": "version",
        "in": "query",
        "required": False,
        "description": "Score with this version.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
    },
]


def _extras(scope: str, body: type[BaseModel]) -> dict[str, Any]:
    return {
        **requires(scope),
        "parameters": PIN_PARAMETERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}
            },
        },
    }


#: Request bodies the routes parse themselves, added to the schema's components.
BODY_MODELS: tuple[type[BaseModel], ...] = (ChurnFeatures, ChurnBatchRequest)

_M = TypeVar("_M", bound=BaseModel)


async def _parse(request: Request, model: type[_M]) -> _M:
    """Validate the body with ``model`` from its raw bytes (pydantic-core parses the JSON)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False, include_url=False)) from None


def _state(request: Request) -> tuple[ModelCache, ApiSettings]:
    state = request.app.state
    return state.model_cache, state.settings


def _predictor(request: Request, cache: ModelCache) -> Predictor:
    query = request.query_params
    if not query:
        return cache.get(MODEL_NAME)
    alias = query.get("alias")
    raw_version = query.get("version")
    if alias is not None and raw_version is not None:
        raise ApiError(422, "invalid_input", "pass either alias or version, not both")
    if raw_version is not None:
        if not _VERSION.fullmatch(raw_version) or not 1 <= int(raw_version) <= MAX_VERSION:
            raise ApiError(
                422, "invalid_input", f"version must be an integer from 1 to {MAX_VERSION}"
            )
        return cache.get_pinned(MODEL_NAME, version=int(raw_version), alias=None)
    if alias is not None:
        # fullmatch: "$" alone would also match before a trailing newline ("staging\n").
        if len(alias) > 128 or not NAME_PATTERN.fullmatch(alias) or ".." in alias:
            raise ApiError(422, "invalid_input", "alias must be a valid name (e.g. staging)")
        return cache.get_pinned(MODEL_NAME, version=None, alias=alias)
    return cache.get(MODEL_NAME)


def _count(records: list[dict[str, Any]]) -> None:
    # One labels() lookup per (version, risk level), not per row.
    counts = Counter((r["model_version"], r["risk_level"]) for r in records)
    for (version, risk_level), count in counts.items():
        prediction_counter(MODEL_NAME, version, risk_level).inc(count)
    if lambda_configured():
        metrics.add_metric(name="Predictions", unit="Count", value=len(records))
        publish_predictions_by_risk(MODEL_NAME, Counter(r["risk_level"] for r in records))


def _json(body: Any) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.post(
    "/churn", response_model=ChurnPrediction, openapi_extra=_extras("predict", ChurnFeatures)
)
async def predict_churn(request: Request) -> Response:
    """Churn probability and risk level of one player."""
    features = await _parse(request, ChurnFeatures)
    cache, _ = _state(request)
    records = _predictor(request, cache).predict_records([features])
    _count(records)
    return _json(records[0])


@router.post(
    "/churn/batch",
    response_model=ChurnBatchResponse,
    openapi_extra=_extras("predict", ChurnBatchRequest),
)
async def predict_churn_batch(request: Request) -> Response:
    """Churn probabilities of many players, in the order given."""
    body = await _parse(request, ChurnBatchRequest)
    cache, settings = _state(request)
    if len(body.rows) > settings.max_batch_rows:
        raise ApiError(
            422, "invalid_input", f"at most {settings.max_batch_rows} rows per batch request"
        )
    predictor = _predictor(request, cache)
    records = predictor.predict_records(body.rows)
    _count(records)
    return _json({"predictions": records, "model_version": predictor.label})
