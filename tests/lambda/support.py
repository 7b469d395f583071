"""Canned API Gateway events, a fake Lambda context and a decoded handler response.

The events live in ``events/`` at the repository root, so ``sam local invoke -e`` and these tests
use the same files. (``tests.lambda`` cannot be imported by name, ``lambda`` being a keyword:
test modules import this one relatively.)
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.hygiene import check_body, names_from_env

EVENTS = Path(__file__).resolve().parents[2] / "events"
API_KEY = "local-dev-key"  # the placeholder key in the canned events
FUNCTION_NAME = "ml-api-ApiFunction-test"


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>.json`` (tests may change it)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


@dataclass
class LambdaContext:
    """The attributes and method of the Lambda context object that handlers use."""

    function_name: str = FUNCTION_NAME
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    function_version: str = "$LATEST"
    log_group_name: str = f"/aws/lambda/{FUNCTION_NAME}"
    log_stream_name: str = "2024/06/20/[$LATEST]0123456789abcdef0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@dataclass
class Response:
    """A handler's return value, decoded: status, lower-cased headers and the JSON body."""

    raw: dict[str, Any]
    status: int
    headers: dict[str, str]
    body: Any


def invoke(handler: Any, event: dict[str, Any], context: LambdaContext) -> Response:
    raw: dict[str, Any] = handler(event, context)
    text = raw.get("body") or ""
    if raw.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    check_body(text, names_from_env())
    headers = {key.lower(): value for key, value in (raw.get("headers") or {}).items()}
    return Response(raw, raw["statusCode"], headers, json.loads(text) if text else None)


def set_header(event: dict[str, Any], name: str, value: str | None) -> dict[str, Any]:
    """Set (or with ``None`` remove) a request header in both header maps of an event."""
    for key in ("headers", "multiValueHeaders"):
        headers = event.get(key)
        if headers is None:
            continue
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        if value is not None:
            headers[name] = [value] if key == "multiValueHeaders" else value
    return event


def set_body(event: dict[str, Any], body: str) -> dict[str, Any]:
    """Replace the body (sent as plain text) and keep any Content-Length header truthful."""
    event["body"] = body
    event["isBase64Encoded"] = False
    if any(k.lower() == "content-length" for k in event.get("headers") or {}):
        set_header(event, "content-length", str(len(body.encode())))
    return event
