"""Request and response bodies of the API (the SDK's entities are returned as they are)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from tracking.entities import Metric
from tracking.validation import NAME_PATTERN

_DIGITS = re.compile(r"[0-9]{1,10}")


def _decimal(value: object) -> object:
    """Digits only: lax parsing reads ``"5\\n"``, ``" 5"``, ``"+5"`` or ``"1_0"`` as numbers."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("must be a decimal integer (digits only)")
    return value


#: After the ``Path``/``Query`` metadata, so that the OpenAPI schema stays as it was (an
#: integer, which a string such as "5\\n" is not).
Decimal = BeforeValidator(_decimal)

NamePath = Annotated[str, Path(pattern=NAME_PATTERN.pattern, max_length=128)]
VersionPath = Annotated[int, Path(ge=1, le=10**9), Decimal]
RunIdPath = Annotated[str, Path(pattern=NAME_PATTERN.pattern, max_length=128)]
MaxResults = Annotated[int, Query(ge=1, le=1000, description="Page size."), Decimal]
#: The API's cap on a downsampled history (the SDK has none).
DEFAULT_MAX_POINTS = 1000
MAX_POINTS_LIMIT = 10_000
MaxPoints = Annotated[
    int | None,
    Query(ge=2, le=MAX_POINTS_LIMIT, description="Downsample to at most this many points "
          "(first, last, per-bucket min and max). Default 1000."),
    Decimal,
]  # fmt: skip
PageToken = Annotated[
    str | None, Query(max_length=2048, description="The next_token of the previous page.")
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PromoteRequest(_Body):
    to: Annotated[str, Field(pattern=NAME_PATTERN.pattern, max_length=128,
                             description="production, staging or a custom alias")]  # fmt: skip
    reason: Annotated[str | None, Field(max_length=1000)] = None


class RollbackRequest(_Body):
    alias: Annotated[str, Field(pattern=NAME_PATTERN.pattern, max_length=128)] = "production"
    reason: Annotated[str | None, Field(max_length=1000)] = None


_AliasName = Annotated[str, Field(pattern=NAME_PATTERN.pattern, max_length=128)]
_Reason = Annotated[str | None, Field(max_length=1000)]


class TrafficRequest(_Body):
    weights: Annotated[
        dict[_AliasName, Annotated[StrictInt, Field(ge=0, le=100)]],
        Field(
            min_length=1,
            max_length=8,
            description="Alias -> integer percent (0-100), summing to 100, e.g. "
            '{"production": 90, "challenger": 10}. Every alias must point at a version.',
            # The key pattern is a patternProperties entry, which alone would let any other key
            # through (with any value): the schema must refuse what validation refuses.
            json_schema_extra={"additionalProperties": False},
        ),
    ]
    shadow: Annotated[
        list[_AliasName],
        Field(
            default_factory=list,
            max_length=8,
            description="Aliases scored on the same requests, never answering.",
        ),
    ]
    sticky: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
            description="Request field whose value keeps a caller on one variant "
            "(e.g. player_id); none: each request is assigned at random.",
        ),
    ] = None
    reason: _Reason = None


class HealthResponse(BaseModel):
    status: str
    degraded: bool
    uptime_seconds: float
    models: list[dict[str, Any]]


class ReadyResponse(BaseModel):
    ready: bool
    unavailable: list[str] = Field(
        default=[],
        description="Served models with no verified version loaded: each answers 503 while "
        "the others serve.",
    )


class MetricHistories(BaseModel):
    """Histories of several runs: ``histories[run_id][key]`` is a list of points."""

    histories: dict[str, dict[str, list[Metric]]]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_found.")
    message: str = Field(description="What is wrong, for a person.")
    request_id: str = Field(description="The request's id, also in the X-Request-ID header.")


class ErrorResponse(BaseModel):
    """The shape of every error answer."""

    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all with the one error shape."""
    descriptions = {
        401: "No valid X-API-Key.",
        403: "The key lacks the route's scope.",
        404: "No such model, version, experiment or run.",
        409: "Conflict: a concurrent change won, or nothing to roll back to.",
        413: "The body is too large.",
        422: "Invalid input (body, path or query); the message names the field.",
        500: "Internal error (no detail is given).",
        503: "A dependency or the model is unavailable; retry after Retry-After seconds.",
    }
    return {code: {"model": ErrorResponse, "description": descriptions[code]} for code in codes}
