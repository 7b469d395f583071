"""Metrics and logs, created once here: prometheus-client everywhere, Powertools on Lambda.

``RequestMiddleware`` is a plain ASGI middleware (no BaseHTTPMiddleware: it would add a task and
a memory stream per request). It gives each request an id (the API Gateway request id on Lambda,
else ``X-Request-ID`` or a new one), refuses bodies over the size limit with 413, counts and times
requests by route template and status, and logs one JSON line per request. It never logs a body
or a query string: feature payloads stay out of the logs.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ml-api")
logger = Logger(service=SERVICE)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MLOps"), service=SERVICE
)
_DOC_PATHS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
# The docs' assets (functions/api/docs.py, a mount: no route object either): one label for all.
_DOC_ASSETS = "/docs/static"
# The web UI's assets (functions/api/ui, a mount too).
_UI_ASSETS = "/ui/static"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def on_lambda() -> bool:
    """Whether this process runs in a Lambda environment (read when asked, not at import)."""
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ


#: Set by ``configure_request_log`` when the app is built (not at import: tests switch it).
_LAMBDA = False


def configure_request_log() -> None:
    """Choose the request log writer for this process: Powertools on Lambda, a direct one else."""
    global _LAMBDA
    _LAMBDA = on_lambda()


def lambda_configured() -> bool:
    """``on_lambda()`` as of the app's construction, without an environment read per request."""
    return _LAMBDA


def prediction_counter(
    model: str, version: str, risk_level: str, variant: str = "production"
) -> Any:
    """The predictions counter's child for one label set, cached like the request metrics."""
    key = (model, version, risk_level, variant)
    found = _PREDICTION_CHILDREN.get(key)
    if found is None:
        found = METRICS.predictions.labels(
            model=model, version=version, risk_level=risk_level, variant=variant
        )
        if len(_PREDICTION_CHILDREN) < _CHILDREN_MAX:
            _PREDICTION_CHILDREN[key] = found
    return found


_PREDICTION_CHILDREN: dict[tuple[str, str, str, str], Any] = {}


def _publish_counts(name: str, counts: Mapping[tuple[tuple[str, str], ...], int]) -> None:
    """One EMF document per label set: ``counts`` maps ((dimension, value), ...) to a count."""
    for labels, count in counts.items():
        with single_metric(
            name=name, unit=MetricUnit.Count, value=count, namespace=metrics.namespace,
            default_dimensions={"service": SERVICE, **dict(labels)},
        ):  # fmt: skip
            pass


def publish_predictions_by_variant(model: str, counts: Mapping[str, int]) -> None:
    """EMF ``VariantPredictions`` per model and variant, sent only while a traffic policy splits
    the model (its own metric name: a new dimension on ``Predictions`` would be a new metric)."""
    _publish_counts("VariantPredictions", {
        (("model", model), ("variant", variant)): count for variant, count in counts.items()
    })  # fmt: skip


def publish_predictions_by_risk(model: str, counts: Mapping[str, int]) -> None:
    """EMF ``Predictions`` per model and risk level (template.yaml's dashboard draws them).

    The invocation's ``metrics`` gives every metric of a flush the same dimensions, and one batch
    mixes risk levels, so each level is its own document. No version dimension: each one would be
    a new CloudWatch metric, billed monthly, forever (Prometheus has the version label).
    """
    _publish_counts("Predictions", {
        (("model", model), ("risk_level", level)): count for level, count in counts.items()
    })  # fmt: skip


def publish_prediction_log_dropped(counts: Mapping[tuple[str, str], int]) -> None:
    """EMF ``PredictionLogDropped`` per model and reason (one document per label set)."""
    _publish_counts("PredictionLogDropped", {
        (("model", model), ("reason", reason)): count for (model, reason), count in counts.items()
    })  # fmt: skip


#: The line's constant head: the fields every request line shares, encoded once.
_LINE_HEAD = '{"level":"INFO","message":"request","timestamp":"'
_LINE_SERVICE = '","service":' + encode_basestring_ascii(SERVICE)


@functools.lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) of a second: formatted once per second, not per request."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch_second))


def _write_request_line(
    request_id: str, method: str, route: str, status: int, duration_ms: float
) -> None:
    """One JSON line per request, with Powertools' keys, written straight to stdout.

    Off Lambda there is no invocation context to add, and Powertools' formatter cost ~90 us per
    request (a third of a prediction; bench/serving_bench.py). The line is formatted directly
    (the same JSON as encoding a dict of these fields, in this order): a dict and an encoder
    call per request were most of the middleware's own time.
    """
    now = time.time()
    sys.stdout.write(
        f"{_LINE_HEAD}{_second(int(now))},{int(now % 1 * 1000):03d}+0000{_LINE_SERVICE}"
        f',"request_id":{encode_basestring_ascii(request_id)}'
        f',"method":{encode_basestring_ascii(method)},"route":{encode_basestring_ascii(route)}'
        f',"status":{int(status)},"duration_ms":{float(duration_ms)!r}}}\n'
    )
    sys.stdout.flush()  # one line per request reaches the log collector now, not per 8 KB


@dataclass(frozen=True)
class _Metrics:
    requests: Counter
    latency: Histogram
    predictions: Counter
    model_load_seconds: Histogram
    cold_starts: Counter
    refresh_failures: Counter
    shadow_predictions: Counter
    shadow_seconds: Histogram
    shadow_failures: Counter
    shadow_dropped: Counter
    prediction_log_dropped: Counter


METRICS = _Metrics(
    requests=Counter(
        "http_requests_total", "HTTP requests by route, method and status",
        ["route", "method", "status"],
    ),
    latency=Histogram(
        "http_request_duration_seconds", "Request latency by route and method",
        ["route", "method"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    ),
    predictions=Counter(
        "predictions_total", "Answered predictions by model, version, risk level and variant",
        ["model", "version", "risk_level", "variant"],
    ),
    model_load_seconds=Histogram(
        "model_load_seconds", "Download, verify, load and warm up a model version", ["model"],
        buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    ),
    cold_starts=Counter("cold_starts_total", "Processes (Lambda environments) started"),
    refresh_failures=Counter(
        "model_refresh_failures_total", "Failed reads or loads of a served model", ["model"]
    ),
    shadow_predictions=Counter(
        "shadow_predictions_total", "Rows scored by a shadow variant (never answered)",
        ["model", "version", "variant"],
    ),
    shadow_seconds=Histogram(
        "shadow_prediction_seconds", "Time to score a request's rows with one shadow variant",
        ["model", "variant"],
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    ),
    shadow_failures=Counter(
        "shadow_failures_total", "Shadow scorings that raised (the answer was already sent)",
        ["model", "variant"],
    ),
    shadow_dropped=Counter(
        "shadow_dropped_total", "Rows not shadow-scored because the shadow queue was full",
        ["model", "variant"],
    ),
    prediction_log_dropped=Counter(
        "prediction_log_dropped_total",
        "Prediction log records dropped (buffer_full, store_error, shutdown)",
        ["model", "reason"],
    ),
)  # fmt: skip


def prometheus_text() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


def _unmatched(path: str) -> str:
    for assets in (_DOC_ASSETS, _UI_ASSETS):
        if path.startswith(assets + "/"):
            return assets
    return "unmatched"


def _request_id(scope: Scope) -> str:
    event = scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext") or {}
        found = context.get("requestId")
        if isinstance(found, str):
            return found
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
            break
    # A random per-process prefix and a counter: unique like a uuid4, without reading
    # os.urandom on every request (uuid4 was the middleware's largest single cost).
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


async def _send_json(send: Send, status: int, body: bytes, request_id: str) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode()),
                    (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    """Request id, body-size limit, metrics and one log line per request."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_batch_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_batch_body = max_batch_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.max_batch_body if scope["path"].endswith("/batch") else self.max_body
        status = 500

        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    # The 413 body is built only when needed, not for every request.
                    too_large = _too_large_body(request_id, limit)
                    await _send_json(send, 413, too_large, request_id)
                    self._record(scope, 413, started, request_id)
                    return
                break

        received = 0
        exceeded = False
        replaced = False
        # When the last byte went out: work after the answer (shadow scoring) is not latency.
        answered: float | None = None

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def send_with_status(message: Message) -> None:
            nonlocal status, replaced, answered
            if exceeded:
                # The app turned our BodyTooLarge into its own error (FastAPI answers 400 for
                # any failure while reading a body): answer 413 in its place, once.
                if not replaced:
                    replaced = True
                    status = 413
                    await _send_json(send, 413, _too_large_body(request_id, limit), request_id)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()

        try:
            await self.app(scope, limited_receive, send_with_status)
        except BodyTooLarge:
            if not replaced:
                status = 413
                await _send_json(send, 413, _too_large_body(request_id, limit), request_id)
        finally:
            self._record(scope, status, started, request_id, answered)

    @staticmethod
    def _record(
        scope: Scope, status: int, started: float, request_id: str, answered: float | None = None
    ) -> None:
        elapsed = (answered or time.perf_counter()) - started
        route = getattr(scope.get("route"), "path", None) or (
            # FastAPI's own docs routes carry no route object; any other path is not ours, and
            # must not become a label (unbounded cardinality).
            scope["path"] if scope["path"] in _DOC_PATHS else _unmatched(scope["path"])
        )
        method = scope.get("method", "")
        requests, latency = _children(route, method, status)
        requests.inc()
        latency.observe(elapsed)
        duration_ms = round(elapsed * 1000, 3)
        if _LAMBDA:
            # On Lambda, Powertools adds the invocation context and the correlation id.
            logger.info("request", extra={
                "request_id": request_id, "method": method, "route": route, "status": status,
                "duration_ms": duration_ms,
            })  # fmt: skip
        else:
            _write_request_line(request_id, method, route, status, duration_ms)


#: (route, method, status) -> the label children of the request counter and latency histogram.
_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}
#: Routes are templates and statuses few, but the method is whatever the client sent: past this
#: many label sets, children are looked up each time (as before) instead of cached without end.
_CHILDREN_MAX = 512


def _children(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The metric children for one label set, cached: each ``labels()`` takes a lock and sorts."""
    key = (route, method, status)
    found = _CHILDREN.get(key)
    if found is None:
        found = (
            METRICS.requests.labels(route=route, method=method, status=str(status)),
            METRICS.latency.labels(route=route, method=method),
        )
        if len(_CHILDREN) < _CHILDREN_MAX:
            _CHILDREN[key] = found
    return found


def _too_large_body(request_id: str, limit: int) -> bytes:
    error = {
        "code": "payload_too_large",
        "message": f"the body is larger than {limit} bytes",
        "request_id": request_id,
    }
    return json.dumps({"error": error}).encode()
