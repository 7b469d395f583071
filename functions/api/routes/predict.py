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

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from starlette.background import BackgroundTask

from functions.api.auth import DirectRoute, requires
from functions.api.errors import ApiError
from functions.api.model_cache import Loaded, ModelCache
from functions.api.observability import (
    lambda_configured,
    metrics,
    prediction_counter,
    publish_predictions_by_risk,
    publish_predictions_by_variant,
)
from functions.api.prediction_log import PredictionLog
from functions.api.shadow import ShadowScorer, convert
from functions.api.traffic import PRODUCTION
from models.catalog import package
from models.serving import ServedModel
from tracking import NotFound
from tracking.validation import NAME_PATTERN

log = logging.getLogger(__name__)

MAX_VERSION = 10**9
PREFIX = "/predict"
#: The response header naming the variant (alias) that answered; a batch lists each one once.
VARIANT_HEADER = "X-Model-Variant"
#: The variant of an answer ``?version=`` pinned (an ``?alias=`` pin reports the alias).
PINNED = "pinned"
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


def _pinned(request: Request, cache: ModelCache, name: str) -> tuple[Loaded, str] | None:
    """The version ``?alias=`` / ``?version=`` pins, with its variant label; ``None``: no pin."""
    if not request.scope.get("query_string"):
        return None  # the usual request: no QueryParams parsed
    query = request.query_params
    alias = query.get("alias")
    raw_version = query.get("version")
    if alias is not None and raw_version is not None:
        raise ApiError(422, "invalid_input", "pass either alias or version, not both")
    if raw_version is not None:
        if not _VERSION.fullmatch(raw_version) or not 1 <= int(raw_version) <= MAX_VERSION:
            raise ApiError(
                422, "invalid_input", f"version must be an integer from 1 to {MAX_VERSION}"
            )
        return cache.get_pinned(name, version=int(raw_version), alias=None), PINNED
    if alias is not None:
        # fullmatch: "$" alone would also match before a trailing newline ("staging\n").
        if len(alias) > 128 or not NAME_PATTERN.fullmatch(alias) or ".." in alias:
            raise ApiError(422, "invalid_input", "alias must be a valid name (e.g. staging)")
        return cache.get_pinned(name, version=None, alias=alias), alias
    return None


@dataclass
class Scored:
    """One request's answers: which variant gave each row's, and the shadows still to score."""

    records: list[dict[str, Any]]
    variants: list[str]  # per row
    labels: list[str]  # the answering version's label, per row
    shadows: list[Loaded] = field(default_factory=list)
    shadow_names: list[str] = field(default_factory=list)
    sticky: str | None = None  # the policy's sticky field, logged with each answer

    def header(self) -> str:
        return ",".join(dict.fromkeys(self.variants))


def _score(request: Request, name: str, rows: list[Any], parse_first: Loaded) -> Scored:
    """Answer ``rows`` by policy: production, a weighted variant, or what a pin names."""
    cache: ModelCache = request.app.state.model_cache
    split, variants = cache.traffic(name)
    if split is None:
        records = parse_first.predictor.predict_records(rows)
        label = parse_first.predictor.label
        return Scored(records, [PRODUCTION] * len(rows), [label] * len(rows))
    # Each row on its variant (one player, one variant), scored in one call per variant.
    groups: dict[str, list[int]] = {}
    chosen: dict[str, Loaded] = {PRODUCTION: parse_first}
    converted = list(rows)
    assigned = []
    for index, row in enumerate(rows):
        alias = split.assign(split.key_of(row))
        target = chosen.get(alias) or variants.get(alias)
        as_row = None if target is None else convert(row, target)
        if target is None or as_row is None:
            alias = PRODUCTION  # not loaded, or this row is not valid there: production answers
        else:
            chosen[alias], converted[index] = target, as_row
        assigned.append(alias)
        groups.setdefault(alias, []).append(index)
    answered: list[dict[str, Any]] = [{}] * len(rows)
    labels = [""] * len(rows)
    for alias, indexes in groups.items():
        target = chosen[alias]
        answers = target.predictor.predict_records([converted[i] for i in indexes])
        for index, answer in zip(indexes, answers, strict=True):
            answered[index], labels[index] = answer, target.predictor.label
    shadows = [variants[alias] for alias in split.shadow if alias in variants]
    names = [alias for alias in split.shadow if alias in variants]
    return Scored(answered, assigned, labels, shadows, names, split.sticky)


def _count(name: str, served: ServedModel, scored: Scored) -> None:
    # One labels() lookup per (version, outcome, variant), not per row.
    labels, variants = scored.labels, scored.variants
    if not labels:
        return
    outcomes: Counter[tuple[str, str, str]]
    if len(labels) == 1 and not lambda_configured():  # one row: nothing to group
        prediction_counter(name, labels[0], served.outcome(scored.records[0]), variants[0]).inc()
        return
    if labels.count(labels[0]) == len(labels) and variants.count(variants[0]) == len(variants):
        # One version and variant answered (no split): only the outcome varies by row.
        by_outcome = served.count_outcomes(scored.records)
        outcomes = Counter({(labels[0], o, variants[0]): n for o, n in by_outcome.items()})
    else:
        outcomes = Counter(
            (label, served.outcome(record), variant)
            for record, label, variant in zip(scored.records, labels, variants, strict=True)
        )
    for (label, outcome, variant), count in outcomes.items():
        prediction_counter(name, label, outcome, variant).inc(count)
    if lambda_configured():
        metrics.add_metric(name="Predictions", unit="Count", value=len(scored.records))
        by_risk: Counter[str] = Counter()
        by_variant: Counter[str] = Counter()
        for (_, outcome, variant), count in outcomes.items():
            by_risk[outcome] += count
            by_variant[variant] += count
        publish_predictions_by_risk(name, by_risk)
        if set(by_variant) != {PRODUCTION}:
            publish_predictions_by_variant(name, by_variant)


def _shadows(request: Request, name: str, scored: Scored, rows: list[Any]) -> BackgroundTask | None:
    """Hand the rows to the shadows once the answer is computed; they never change it.

    On Lambda the process freezes after the response, so the shadows are scored right after it
    is sent (a background task, which Mangum runs before the invocation returns); elsewhere the
    rows are queued for the shadow worker, which scores them in batches.
    """
    if not scored.shadows:
        return None
    scorer: ShadowScorer = request.app.state.shadow
    request_id = _request_id(request)
    if lambda_configured():
        return BackgroundTask(_score_now, scorer, name, scored, rows, request_id)
    for alias, target in zip(scored.shadow_names, scored.shadows, strict=True):
        scorer.submit(name, alias, target, rows, request_id)
    return None


def _score_now(
    scorer: ShadowScorer, name: str, scored: Scored, rows: list[Any], request_id: str
) -> None:
    for alias, target in zip(scored.shadow_names, scored.shadows, strict=True):
        scorer.score(name, alias, target, rows, [request_id] * len(rows))


def _request_id(request: Request) -> str:
    state = request.scope.get("state") or {}
    return str(state.get("request_id", ""))


def _log(request: Request, name: str, scored: Scored, rows: list[Any]) -> None:
    """Hand the answers to the prediction log (a buffer append per variant; never raises)."""
    log_: PredictionLog = request.app.state.prediction_log
    if not log_.enabled:
        return
    sticky = scored.sticky
    request_id = _request_id(request)
    variants = set(scored.variants)
    if len(variants) == 1:
        log_.log_predictions(request_id=request_id, model=name, variant=scored.variants[0],
                             answers=scored.records, rows=rows, sticky_field=sticky)  # fmt: skip
        return
    for variant in variants:
        indexes = [i for i, v in enumerate(scored.variants) if v == variant]
        log_.log_predictions(request_id=request_id, model=name, variant=variant,
                             answers=[scored.records[i] for i in indexes],
                             rows=[rows[i] for i in indexes], sticky_field=sticky)  # fmt: skip


_VARIANT_HEADER = VARIANT_HEADER.lower().encode()


class _Answer(Response):
    """A JSON answer with its headers built directly: ``Response.__init__`` renders and checks
    generic headers (media type, charset, content length) for each response."""

    media_type = "application/json"

    def __init__(self, body: bytes, variant: str, background: BackgroundTask | None) -> None:
        self.status_code = 200
        self.background = background
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            # Variants are validated names (NAME_PATTERN), ASCII like every header value here.
            (_VARIANT_HEADER, variant.encode("latin-1")),
        ]


def _json(body: Any, variant: str, background: BackgroundTask | None = None) -> Response:
    """The answer's JSON, written by pydantic-core: about 5x less CPU than ``json`` for a 100-row
    batch (21 against 116 µs), most of it each float's text; that was a tenth of a 100-row
    request's profile (py-spy on ``bench/serving_bench.py``'s server). The same JSON values as
    ``json.dumps``: a float below 1e-4 in magnitude is written without an exponent, text is
    UTF-8 rather than ``\\u`` escapes, and NaN and infinities are written as ``json`` writes
    them."""
    return _Answer(to_json(body), variant, background)


def _rows(request: Request, raw: bytes, served: ServedModel, batch: bool) -> list[Any]:
    """The validated rows of the body, by ``served``'s schema (422 naming the field)."""
    try:
        if not batch:
            return [served.request.model_validate_json(raw)]
        rows: list[Any] = served.batch_request.model_validate_json(raw).rows  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_input=False, include_url=False)) from None
    limit = request.app.state.settings.max_batch_rows
    if len(rows) > limit:
        raise ApiError(422, "invalid_input", f"at most {limit} rows per batch request")
    return rows


async def _answer(
    request: Request, name: str, batch: bool
) -> tuple[Scored, list[Any], ServedModel]:
    cache: ModelCache = request.app.state.model_cache
    raw = await request.body()  # first: an oversized body is a 413 whatever else is wrong
    try:
        pinned = _pinned(request, cache, name)
        loaded = cache.get(name) if pinned is None else pinned[0]
    except ApiError as exc:
        # Nothing to serve: a body its package's schema refuses is still a 422, not a 503.
        declared = package(name)
        if exc.status == 503 and declared is not None:
            _rows(request, raw, declared, batch)
        raise
    rows = _rows(request, raw, loaded.served, batch)
    if pinned is not None:  # a pin wins over the policy, and nothing shadows it
        label = loaded.predictor.label
        records = loaded.predictor.predict_records(rows)
        return Scored(records, [pinned[1]] * len(rows), [label] * len(rows)), rows, loaded.served
    return _score(request, name, rows, loaded), rows, loaded.served


def _single(name: str) -> Endpoint:
    async def predict(request: Request) -> Response:
        scored, rows, served = await _answer(request, name, batch=False)
        _count(name, served, scored)
        _log(request, name, scored, rows)
        background = _shadows(request, name, scored, rows)
        return _json(scored.records[0], scored.variants[0], background)

    return predict


def _batch(name: str) -> Endpoint:
    async def predict_batch(request: Request) -> Response:
        scored, rows, served = await _answer(request, name, batch=True)
        _count(name, served, scored)
        _log(request, name, scored, rows)
        background = _shadows(request, name, scored, rows)
        model_version = ",".join(dict.fromkeys(scored.labels))
        body = {"predictions": scored.records, "model_version": model_version}
        return _json(body, scored.header(), background)

    return predict_batch


def _not_served(name: str) -> NotFound:
    # Echo the name only when it is one: the message must never carry arbitrary input.
    if len(name) <= 128 and NAME_PATTERN.fullmatch(name):
        return NotFound(f"model {name!r} is not served by this API")
    return NotFound("no such model is served by this API")


async def _unknown(request: Request) -> Response:
    await request.body()  # an oversized body is a 413 here too, as on every route
    raise _not_served(str(request.path_params.get("name", "")))


def add_routes(
    router: APIRouter,
    declarations: Iterable[tuple[str, ServedModel | None]],
    responses: dict[int | str, dict[str, Any]],
) -> list[type[BaseModel]]:
    """Add the prediction routes of the served models to ``router``; return the bodies they
    parse themselves.

    ``router`` is the app's own: an included router is matched twice per request (once to pick
    it, once inside it) with FastAPI's per-inclusion scope bookkeeping. With the model call
    stubbed, in process, that was about half of what a one-row prediction cost beyond the
    benchmark's floor (bench/_floor_app.py).
    ``declarations`` gives each served name with how it is served at start (``None``: not known
    yet, so its operations are documented without a schema).
    """
    common: dict[str, Any] = {
        "methods": ["POST"], "tags": ["predict"], "responses": responses,
        "route_class_override": DirectRoute,
    }  # fmt: skip
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
            f"{PREFIX}/{name}",
            _single(name),
            name=f"predict_{name}",
            summary=summary,
            description=f"One prediction of model `{name}` (its production version unless pinned).",
            response_model=None if served is None else served.response,
            openapi_extra=_extras(single),
            **common,
        )
        router.add_api_route(
            f"{PREFIX}/{name}/batch",
            _batch(name),
            name=f"predict_{name}_batch",
            summary=f"Predictions of model {name!r} for many rows, in the order given",
            description=f"Batch predictions of model `{name}`: `rows` are answered in order.",
            response_model=None if served is None else served.batch_response,
            openapi_extra=_extras(batch),
            **common,
        )
    # After the served names: anything else under /predict is a model this API does not serve.
    for path in ("/{name}", "/{name}/batch"):
        router.add_api_route(
            PREFIX + path, _unknown, include_in_schema=False, openapi_extra=requires("predict"),
            **common,
        )  # fmt: skip
    return bodies
