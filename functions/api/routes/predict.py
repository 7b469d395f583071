"""``POST /predict/{name}`` and ``/predict/{name}/batch`` for every served model.

The routes are built at start, one typed operation per name in ``SERVED_MODELS``: the OpenAPI
request and response schemas come from the declaration that serves the loaded production version
(its package's, or one built from its stored signature), so ``/docs`` shows each model's real
fields. A request is validated against the version being served *now*: a hot-reloaded version
with another signature is checked against its own schema. A name that is not served is a 404.

This is the hot path, trimmed with ``bench/serving_bench.py --profile``: each FastAPI parameter
or dependency is another round of dependency solving, which cost more than the prediction
itself. So the routes take only the request: the model cache and settings come from the app
state, the body is parsed by pydantic straight from its bytes, the two optional query parameters
are read here (declared for the docs in ``openapi_extra``), and the answer is serialised once,
from plain dicts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from functions.api.auth import AuthRoute, requires
from functions.api.errors import ApiError
from functions.api.model_cache import Loaded, ModelCache
from functions.api.observability import (
    lambda_configured,
    metrics,
    prediction_counter,
    publish_predictions_by_risk,
)
from models.serving import ServedModel
from tracking import NotFound
from tracking.validation import NAME_PATTERN

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
#: The body of a model that has neither a package nor a loaded version at start: its schema is
#: the signature of whichever version gets promoted, checked when a request comes.
UNTYPED_BODY: dict[str, Any] = {
    "type": "object",
    "description": "Validated against the served version's signature (none was loaded at start).",
}

_M = TypeVar("_M", bound=BaseModel)
Endpoint = Callable[[Request], Awaitable[Response]]


def _extras(body: type[BaseModel] | None) -> dict[str, Any]:
    schema = UNTYPED_BODY if body is None else {"$ref": f"#/components/schemas/{body.__name__}"}
    return {
        **requires("predict"),
        "parameters": PIN_PARAMETERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
    }


async def _parse(request: Request, model: type[_M]) -> _M:
    """Validate the body with ``model`` from its raw bytes (pydantic-core parses the JSON)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False, include_url=False)) from None


def _loaded(request: Request, cache: ModelCache, name: str) -> Loaded:
    """The production version of ``name``, or the one ``?alias=`` / ``?version=`` pins."""
    query = request.query_params
    if not query:
        return cache.get(name)
    alias = query.get("alias")
    raw_version = query.get("version")
    if alias is not None and raw_version is not None:
        raise ApiError(422, "invalid_input", "pass either alias or version, not both")
    if raw_version is not None:
        if not _VERSION.fullmatch(raw_version) or not 1 <= int(raw_version) <= MAX_VERSION:
            raise ApiError(
                422, "invalid_input", f"version must be an integer from 1 to {MAX_VERSION}"
            )
        return cache.get_pinned(name, version=int(raw_version), alias=None)
    if alias is not None:
        # fullmatch: "$" alone would also match before a trailing newline ("staging\n").
        if len(alias) > 128 or not NAME_PATTERN.fullmatch(alias) or ".." in alias:
            raise ApiError(422, "invalid_input", "alias must be a valid name (e.g. staging)")
        return cache.get_pinned(name, version=None, alias=alias)
    return cache.get(name)


def _count(name: str, loaded: Loaded, records: list[dict[str, Any]]) -> None:
    # One labels() lookup per outcome (risk level), not per row.
    outcomes = Counter(loaded.served.outcome(record) for record in records)
    label = loaded.predictor.label
    for outcome, count in outcomes.items():
        prediction_counter(name, label, outcome).inc(count)
    if lambda_configured():
        metrics.add_metric(name="Predictions", unit="Count", value=len(records))
        publish_predictions_by_risk(name, outcomes)


def _json(body: Any) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


def _single(name: str) -> Endpoint:
    async def predict(request: Request) -> Response:
        cache: ModelCache = request.app.state.model_cache
        loaded = _loaded(request, cache, name)
        row = await _parse(request, loaded.served.request)
        records = loaded.predictor.predict_records([row])
        _count(name, loaded, records)
        return _json(records[0])

    return predict


def _batch(name: str) -> Endpoint:
    async def predict_batch(request: Request) -> Response:
        state = request.app.state
        loaded = _loaded(request, state.model_cache, name)
        body = await _parse(request, loaded.served.batch_request)
        rows: list[Any] = body.rows  # type: ignore[attr-defined]
        limit = state.settings.max_batch_rows
        if len(rows) > limit:
            raise ApiError(422, "invalid_input", f"at most {limit} rows per batch request")
        records = loaded.predictor.predict_records(rows)
        _count(name, loaded, records)
        return _json({"predictions": records, "model_version": loaded.predictor.label})

    return predict_batch


def _not_served(name: str) -> NotFound:
    # Echo the name only when it is one: the message must never carry arbitrary input.
    if len(name) <= 128 and NAME_PATTERN.fullmatch(name):
        return NotFound(f"model {name!r} is not served by this API")
    return NotFound("no such model is served by this API")


async def _unknown(request: Request) -> Response:
    raise _not_served(str(request.path_params.get("name", "")))


def build_router(
    declarations: Iterable[tuple[str, ServedModel | None]],
) -> tuple[APIRouter, list[type[BaseModel]]]:
    """The prediction routes of the served models, and the bodies they parse themselves.

    ``declarations`` gives each served name with how it is served at start (``None``: not known
    yet, so its operations are documented without a schema).
    """
    router = APIRouter(route_class=AuthRoute, prefix="/predict", tags=["predict"])
    bodies: list[type[BaseModel]] = []
    seen: set[str] = set()
    for name, served in declarations:
        if name in seen:
            continue
        seen.add(name)
        single, batch = (None, None) if served is None else (served.request, served.batch_request)
        bodies.extend(body for body in (single, batch) if body is not None)
        summary = served.summary if served is not None and served.summary else f"Predict {name}"
        router.add_api_route(
            f"/{name}",
            _single(name),
            methods=["POST"],
            name=f"predict_{name}",
            summary=summary,
            description=f"One prediction of model `{name}` (its production version unless pinned).",
            response_model=None if served is None else served.response,
            openapi_extra=_extras(single),
        )
        router.add_api_route(
            f"/{name}/batch",
            _batch(name),
            methods=["POST"],
            name=f"predict_{name}_batch",
            summary=f"Predictions of model {name!r} for many rows, in the order given",
            description=f"Batch predictions of model `{name}`: `rows` are answered in order.",
            response_model=None if served is None else served.batch_response,
            openapi_extra=_extras(batch),
        )
    # After the served names: anything else under /predict is a model this API does not serve.
    for path in ("/{name}", "/{name}/batch"):
        router.add_api_route(
            path, _unknown, methods=["POST"], include_in_schema=False,
            openapi_extra=requires("predict"),
        )  # fmt: skip
    return router, bodies
