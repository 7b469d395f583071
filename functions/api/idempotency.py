"""``Idempotency-Key`` for the mutating routes: a retry gets the first answer, not a second move.

The key a client sends is stored as ``{api key name}:{header}``, so two API keys never share a
record. A request is identified by a fingerprint (SHA-256 of method, path and canonical JSON
body). The flow, on the store's ``IdempotencyStore`` port (SQLite table or DynamoDB item):

- the key is new (or its record expired): claim it, run the operation, store its answer
  (2xx and 4xx: a 409 is an answer too) and return it; on a 5xx the claim is released so that a
  retry runs again (a claim also lapses by itself after ``IN_PROGRESS_SECONDS``);
- the key holds a completed answer for the same request: replay it, byte for byte, with
  ``Idempotent-Replay: true``;
- the key was used for a different request: 422;
- the same request is still running: wait for it (up to ``WAIT_SECONDS``), then replay; still
  running: 409.

Answers are kept for ``TTL_SECONDS``. Without the header a route behaves as it always did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from functions.api.auth import Principal
from functions.api.errors import ApiError, error_response, public_message, status_for
from tracking.errors import TrackingError
from tracking.stores.ports.idempotency import IdempotencyStore
from tracking.validation import NAME_PATTERN

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replay"
TTL_SECONDS = 24 * 60 * 60
#: How long a claim holds its key before the answer is stored: longer than any request may run
#: (the Lambda timeout is 25 s), short enough that a request killed mid-way (a timeout, a crash,
#: no chance to release) blocks its key for a minute, not a day.
IN_PROGRESS_SECONDS = 60
WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        pattern=NAME_PATTERN.pattern,
        max_length=128,
        description=(
            "Optional. Send the same key again (with the same body) to retry safely: the first "
            "answer is replayed and the change is made once. Kept for 24 hours."
        ),
    ),
]


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).hexdigest()


def run_once(
    request: Request,
    principal: Principal,
    store: IdempotencyStore,
    header: str | None,
    body: Any,
    operation: Callable[[], _M],
) -> _M | Response:
    """Run ``operation`` at most once per ``Idempotency-Key`` (or as is, without the header)."""
    if header is None:
        return operation()
    key = f"{principal.name}:{header}"
    request_fingerprint = fingerprint(request.method, request.url.path, body)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        now = int(time.time())
        record = store.claim(key, request_fingerprint, now, now + IN_PROGRESS_SECONDS)
        if record is None:
            return _run(request, store, key, request_fingerprint, operation)
        if record.fingerprint != request_fingerprint:
            raise ApiError(422, "invalid_input", f"{HEADER} was used with a different request")
        if record.status == "completed":
            return Response(
                content=record.response_body or "",
                status_code=record.response_status or 200,
                media_type="application/json",
                headers={REPLAY_HEADER: "true"},
            )
        if time.monotonic() >= deadline:
            raise ApiError(409, "conflict", f"a request with this {HEADER} is in progress")
        time.sleep(POLL_SECONDS)


def _run(
    request: Request,
    store: IdempotencyStore,
    key: str,
    request_fingerprint: str,
    operation: Callable[[], BaseModel],
) -> Response:
    try:
        result = operation()
    except TrackingError as error:
        status = status_for(error)
        if status >= 500:
            _release(store, key)
            raise
        response: Response = error_response(request, status, error.code, public_message(error))
    except ApiError as error:
        if error.status >= 500:
            _release(store, key)
            raise
        response = error_response(request, error.status, error.code, error.message, error.headers)
    except BaseException:
        _release(store, key)
        raise
    else:
        response = JSONResponse(result.model_dump(mode="json"))
    try:
        store.complete(
            key,
            request_fingerprint,
            response.status_code,
            bytes(response.body).decode(),
            expires_at=int(time.time()) + TTL_SECONDS,
        )
    except TrackingError as error:
        # The change is made: answer it. The claim lapses after IN_PROGRESS_SECONDS, after
        # which a retry with this key runs again.
        log.warning("could not store an idempotent answer: %s", error.code)
    return response


def _release(store: IdempotencyStore, key: str) -> None:
    try:
        store.release(key)
    except TrackingError as error:
        # The record then stays in progress until it expires; the original error matters more.
        log.warning("could not release an idempotency key: %s", error.code)
