"""Churn predictions from the cached production version (or a pinned candidate)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from functions.api.auth import requires
from functions.api.errors import ApiError
from functions.api.model_cache import ModelCache
from functions.api.observability import METRICS, metrics, on_lambda
from functions.api.schemas import ChurnBatchRequest, ChurnBatchResponse
from functions.api.settings import ApiSettings
from models.base import Predictor
from models.churn import MODEL_NAME
from models.churn.features import ChurnFeatures
from models.churn.predictor import ChurnPrediction
from tracking.validation import NAME_PATTERN

router = APIRouter(prefix="/predict", tags=["predict"])

AliasQuery = Annotated[
    str | None,
    Query(pattern=NAME_PATTERN.pattern, max_length=128,
          description="Score with the version this alias points at (e.g. staging)."),
]  # fmt: skip
VersionQuery = Annotated[int | None, Query(ge=1, le=10**9, description="Score with this version.")]


# The hot path reads the model cache and settings from the app state through ``request`` rather
# than through dependencies: every dependency is another round of FastAPI's dependency solving,
# which cost more than the prediction itself (bench/serving_bench.py --profile). The OpenAPI
# schema is the same: ``Request`` is not in it.
def _state(request: Request) -> tuple[ModelCache, ApiSettings]:
    state = request.app.state
    return state.model_cache, state.settings


def _predictor(cache: ModelCache, alias: str | None, version: int | None) -> Predictor:
    if alias is not None and version is not None:
        raise ApiError(422, "invalid_input", "pass either alias or version, not both")
    if alias is None and version is None:
        return cache.get(MODEL_NAME)
    return cache.get_pinned(MODEL_NAME, version=version, alias=alias)


def _count(predictions: list[ChurnPrediction]) -> None:
    # One labels() lookup per (version, risk level), not per row: a 100-row batch made 100.
    counts = Counter((p.model_version, p.risk_level) for p in predictions)
    for (version, risk_level), count in counts.items():
        METRICS.predictions.labels(model=MODEL_NAME, version=version, risk_level=risk_level).inc(
            count
        )
    if on_lambda():
        metrics.add_metric(name="Predictions", unit="Count", value=len(predictions))


@router.post("/churn", response_model=ChurnPrediction, openapi_extra=requires("predict"))
async def predict_churn(
    features: ChurnFeatures,
    request: Request,
    alias: AliasQuery = None,
    version: VersionQuery = None,
) -> Response:
    """Churn probability and risk level of one player."""
    cache, _ = _state(request)
    predictor = _predictor(cache, alias, version)
    predictions: list[ChurnPrediction] = list(predictor.predict([features]))
    _count(predictions)
    # Serialised here, once: returning the model would make FastAPI validate it again against
    # the response_model (which stays declared for the schema).
    return Response(predictions[0].model_dump_json(), media_type="application/json")


@router.post("/churn/batch", response_model=ChurnBatchResponse, openapi_extra=requires("predict"))
async def predict_churn_batch(
    body: ChurnBatchRequest,
    request: Request,
    alias: AliasQuery = None,
    version: VersionQuery = None,
) -> Response:
    """Churn probabilities of many players, in the order given."""
    cache, settings = _state(request)
    if len(body.rows) > settings.max_batch_rows:
        raise ApiError(
            422, "invalid_input", f"at most {settings.max_batch_rows} rows per batch request"
        )
    predictor = _predictor(cache, alias, version)
    predictions: list[ChurnPrediction] = list(predictor.predict(body.rows))
    _count(predictions)
    answer = ChurnBatchResponse(predictions=predictions, model_version=predictor.label)
    return Response(answer.model_dump_json(), media_type="application/json")
