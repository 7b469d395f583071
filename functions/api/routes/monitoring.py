"""Outcomes, the traffic report and drift: ``POST /feedback/{name}`` (predict scope) and
``GET /models/{name}/traffic/report`` / ``GET /models/{name}/drift`` (read scope).

The reports read the prediction log and the outcomes from the artifact store
(``tracking.monitoring``), exactly as ``tracking ab`` and ``tracking drift`` do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, RootModel

from functions.api.auth import AuthRoute, requires
from functions.api.deps import RegistryDep
from functions.api.errors import ApiError
from functions.api.schemas import NamePath
from tracking.monitoring.feedback import Outcome, write_outcomes
from tracking.monitoring.prediction_log import parse_since
from tracking.monitoring.reports import drift_report, traffic_report

router = APIRouter(route_class=AuthRoute, tags=["monitoring"])

Since = Annotated[
    str,
    Query(
        max_length=16,
        pattern=r"^[0-9]{1,6}[mhd]$",
        description="The window, ending now: 30m, 24h, 7d (at most 31d).",
    ),
]


class FeedbackRequest(RootModel[list[Outcome]]):
    """Outcomes, each naming its prediction by ``request_id`` (and ``row``) or sticky ``key``."""


class FeedbackResponse(BaseModel):
    accepted: int
    model: str


@router.post(
    "/feedback/{name}",
    response_model=FeedbackResponse,
    status_code=202,
    openapi_extra=requires("predict"),
)
def post_feedback(
    request: Request, name: NamePath, body: FeedbackRequest, registry: RegistryDep
) -> FeedbackResponse:
    """Record outcomes (labels) of logged predictions, by request id or sticky key value."""
    limit: int = request.app.state.settings.feedback_max_items
    outcomes = body.root
    if not outcomes:
        raise ApiError(422, "invalid_input", "the body must hold at least one outcome")
    if len(outcomes) > limit:
        raise ApiError(422, "invalid_input", f"at most {limit} outcomes per request")
    registry.get_model(name)
    write_outcomes(registry.artifacts, name, outcomes, datetime.now(UTC))
    return FeedbackResponse(accepted=len(outcomes), model=name)


@router.get(
    "/models/{name}/traffic/report",
    response_model=dict[str, Any],
    openapi_extra=requires("read"),
)
def get_traffic_report(name: NamePath, registry: RegistryDep, since: Since = "24h") -> Any:
    """Per variant: requests, score distribution, AUC/logloss/Brier with 95 % intervals."""
    return traffic_report(registry, name, since=parse_since(since), now=datetime.now(UTC))


@router.get("/models/{name}/drift", response_model=dict[str, Any], openapi_extra=requires("read"))
def get_drift(name: NamePath, registry: RegistryDep, since: Since = "24h") -> Any:
    """PSI and KS of the live score (and features, when logged) against the training profile."""
    return drift_report(registry, name, since=parse_since(since), now=datetime.now(UTC))
