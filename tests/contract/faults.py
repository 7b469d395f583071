"""Fault injection in front of moto with botocore ``before-send`` hooks.

botocore's Stubber answers before the retry loop, so it cannot show what retries do; a
``before-send`` handler runs inside the loop, once per attempt, exactly where the HTTP request
would leave the process. A handler registered here may:

- answer instead of the service (an error or a partial success): ``Injector.respond``;
- raise a transport error (``ReadTimeoutError``, ``EndpointConnectionError``) before the request
  is sent, which botocore treats like a real one (retried in standard mode);
- send the request on to moto first (``forward``) and only then fail, which is a response lost
  after the service committed the write.

In-process moto is itself a ``before-send`` handler, and botocore calls every handler of the
event, so a request this module answers is first pointed at an address moto ignores
(``_swallow``): the emulator never sees it. Over HTTP (moto's server) an answered request is never
sent at all.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

_IGNORED_URL = "http://fault-injected.invalid/"


class _Raw(io.BytesIO):
    """The raw body botocore reads from an ``AWSResponse`` (``stream()`` like urllib3's)."""

    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


@dataclass
class Call:
    """One attempt of one API call, as the hook sees it."""

    service: str
    operation: str
    request: AWSPreparedRequest
    invocation: str
    attempt: int

    def body(self) -> dict[str, Any]:
        raw = self.request.body
        if isinstance(raw, bytes | bytearray):
            raw = raw.decode()
        return json.loads(raw or "{}") if isinstance(raw, str) else {}


Rule = Callable[[Call], AWSResponse | None]


def response(call: Call, status: int, body: bytes, headers: dict[str, str]) -> AWSResponse:
    return AWSResponse(call.request.url, status, HTTPHeaders.from_dict(headers), _Raw(body))


def dynamodb_error(call: Call, code: str, message: str, status: int = 400) -> AWSResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": uuid.uuid4().hex}
    return response(call, status, body.encode(), headers)


def dynamodb_cancelled(call: Call, reasons: list[str]) -> AWSResponse:
    """A TransactionCanceledException with one reason code per item ("None" for no failure)."""
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
        "CancellationReasons": [{"Code": reason} for reason in reasons],
    }
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": uuid.uuid4().hex}
    return response(call, 400, json.dumps(body).encode(), headers)


def dynamodb_ok(call: Call, payload: dict[str, Any]) -> AWSResponse:
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": uuid.uuid4().hex}
    return response(call, 200, json.dumps(payload).encode(), headers)


def s3_error(call: Call, code: str, message: str, status: int) -> AWSResponse:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>"
    )
    headers = {"content-type": "application/xml", "x-amz-request-id": uuid.uuid4().hex}
    return response(call, status, body.encode(), headers)


def read_timeout(call: Call) -> ReadTimeoutError:
    return ReadTimeoutError(endpoint_url=call.request.url)


class Injector:
    """Hooks on some clients; ``rule`` decides per attempt (``None`` lets the request through)."""

    def __init__(self) -> None:
        self.rule: Rule | None = None
        self.active = True
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._http: URLLib3Session | None = None

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_id.hyphenize()
        # More specific than moto's own "before-send" handler, so it runs first.
        client.meta.events.register_first(f"before-send.{service}", self._hook)

    def count(self, label: str, amount: int = 1) -> None:
        with self._lock:
            self.injected[label] += amount

    def _hook(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        service, operation = event_name.split(".", 2)[1:]
        with self._lock:
            self.calls[operation] += 1
        rule = self.rule
        if not self.active or rule is None:
            return None
        call = Call(service, operation, request, *_attempt(request))
        answer = rule(call)
        if answer is not None:
            _swallow(request)
        return answer

    def forward(self, call: Call, request: AWSPreparedRequest | None = None) -> AWSResponse:
        """Send a request on to moto (in-process or server) and return its answer."""
        from moto.core.models import botocore_stubber

        request = request or call.request
        answer = botocore_stubber(event_name=f"before-send.{call.service}", request=request)
        if answer is None:
            with self._lock:
                if self._http is None:
                    self._http = URLLib3Session(timeout=10)
            answer = self._http.send(request)
            answer.content  # noqa: B018 - read the body before the connection is reused
        _swallow(call.request)
        return answer

    def forward_body(self, call: Call, body: dict[str, Any]) -> AWSResponse:
        """Send the call with another JSON body on to moto (a part of a batch, say)."""
        data = json.dumps(body).encode()
        headers = dict(call.request.headers.items())
        headers["Content-Length"] = str(len(data))
        request = AWSPreparedRequest(
            method=call.request.method,
            url=call.request.url,
            headers=headers,  # type: ignore[arg-type]
            body=data,
            stream_output=False,
        )
        return self.forward(call, request)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def _header(request: AWSPreparedRequest, name: str) -> str:
    value = request.headers.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _attempt(request: AWSPreparedRequest) -> tuple[str, int]:
    invocation = _header(request, "amz-sdk-invocation-id")
    attempt = 1
    for part in _header(request, "amz-sdk-request").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "attempt" and value.isdigit():
            attempt = int(value)
    return invocation, attempt


def _swallow(request: AWSPreparedRequest) -> None:
    request.url = _IGNORED_URL


def dynamodb_clients(store: Any) -> list[Any]:
    """The botocore clients of a ``DynamoDBStore`` (one per pynamodb model class)."""
    models = store._models
    return [
        model._get_connection().connection.client
        for model in (models.TrackingItem, models.MetricPoint)
    ]


@dataclass
class NoWait:
    """Records the backoff the code asked for instead of sleeping."""

    sleeps: list[float] = field(default_factory=list)


def no_backoff(monkeypatch: pytest.MonkeyPatch, *stores: Any) -> NoWait:
    """No real sleeping: botocore's retry backoff and the stores' own backoff return at once."""
    from botocore.retries.standard import ExponentialBackoff

    waited = NoWait()
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    for store in stores:
        if hasattr(store, "_sleep"):
            monkeypatch.setattr(store, "_sleep", waited.sleeps.append)
    return waited
