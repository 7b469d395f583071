"""One JSON error shape for every failure, and the table from the SDK's errors to HTTP.

    {"error": {"code": "not_found", "message": "...", "request_id": "..."}}

No handler ever echoes the request body or a traceback: validation errors name the field and the
rule, not the value (a NaN in the input could not even be serialised back). Messages pass through
the app's ``Redactor`` (no table, bucket, folder, URI or ARN), and a dependency failure (5xx) is
answered with a fixed message per kind while its detail goes to the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from functions.api.redaction import Redactor
from tracking.errors import (
    AlreadyExists,
    Conflict,
    IntegrityError,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    TrackingError,
)
from tracking.validation import NAME_PATTERN, NAME_RULE

log = logging.getLogger(__name__)

#: The SDK's error tree -> HTTP status (most specific class first).
STATUS: tuple[tuple[type[TrackingError], int], ...] = (
    (NotFound, 404),
    (AlreadyExists, 409),
    (Conflict, 409),
    (InvalidInput, 422),
    (IntegrityError, 503),
    (StoreUnavailable, 503),
    (TrackingError, 500),
)

#: What a client learns of a failure on our side; the SDK's message is for the log only.
_PUBLIC_5XX: tuple[tuple[type[TrackingError], str], ...] = (
    (IntegrityError, "a stored artifact failed its integrity check"),
    (StoreUnavailable, "a storage dependency is unavailable; try again later"),
    (TrackingError, "internal server error"),
)
_DEFAULT_REDACTOR = Redactor()

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error the API raises itself, with its own code (e.g. ``no_production_model``)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    redact: Redactor = getattr(request.app.state, "redact", _DEFAULT_REDACTOR)
    body = {"error": {"code": code, "message": _bounded(redact(message)),
                      "request_id": request_id(request)}}  # fmt: skip
    return JSONResponse(body, status_code=status, headers=headers)


#: The longest message a client gets. Some messages quote the input (an unknown filter field
#: of 10,000 characters came back whole); cut after redaction, so no name is cut in half.
MAX_MESSAGE = 1000


def _bounded(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "\u2026"


def status_for(error: TrackingError) -> int:
    return next(status for kind, status in STATUS if isinstance(error, kind))


def public_message(error: TrackingError) -> str:
    """The message a client gets: the SDK's for its own mistakes, a fixed one for ours."""
    if status_for(error) < 500:
        return error.message
    return next(message for kind, message in _PUBLIC_5XX if isinstance(error, kind))


def _describe_validation(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:10]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = str(error.get("msg", "invalid"))
        if (error.get("ctx") or {}).get("pattern") == NAME_PATTERN.pattern:
            message = f"use {NAME_RULE}"  # the rule in words, not the regular expression
        if error.get("type") in {"json_invalid", "json_type"}:
            return "the body is not valid JSON"
        parts.append(f"{location or 'body'}: {message}")
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(parts) + more


async def _on_tracking_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TrackingError)
    status = status_for(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    if status >= 500:
        log.warning("dependency failure: %s: %s", exc.code, exc.message)
    return error_response(request, status, exc.code, public_message(exc), headers)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status, exc.code, exc.message, exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        # 422, like every other body problem: the request was understood, its body is not JSON.
        return error_response(request, 422, "invalid_input", "the body is not valid JSON")
    return error_response(request, 422, "invalid_input", _describe_validation(errors))


#: FastAPI's answer (400) to a JSON body it cannot decode (e.g. not UTF-8); a body that is not
#: JSON at all gets a 422 from it. The API answers 422 for both, as /predict does.
_BODY_PARSE_ERROR = "There was an error parsing the body"


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _BODY_PARSE_ERROR:
        return error_response(request, 422, "invalid_input", "the body is not valid JSON")
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return error_response(request, exc.status_code, code, message, headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path accepts (RFC 9110: ``Allow`` lists them all).

    Starlette's 405 names only the methods of the first route whose path matched, so a path
    served by several routes (``GET``, ``PUT`` and ``DELETE`` of ``/models/{name}/traffic``)
    would advertise one. The table is built once per app and set of routes: they are fixed after
    start but for the web UI's, added on its first request (functions/api/ui).
    """
    state = request.app.state
    routes = request.app.router.routes
    cached: tuple[int, list[tuple[re.Pattern[str], frozenset[str]]]] | None = getattr(
        state, "_allow_table", None
    )
    if cached is None or cached[0] != len(routes):
        table = [
            (compile_path(context.path)[0], frozenset(context.methods))
            for context in iter_route_contexts(routes)
            if context.path and context.methods
        ]
        state._allow_table = (len(routes), table)
    else:
        table = cached[1]
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for pattern, accepted in table:
        if pattern.match(path):
            methods |= accepted
    return sorted(methods)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its traceback for operators; the client gets no detail.
    log.error("unhandled error", exc_info=exc)
    return error_response(request, 500, "internal_error", "internal server error")


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(TrackingError, _on_tracking_error)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
