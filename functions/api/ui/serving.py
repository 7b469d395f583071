"""/ui/serving: this process's traffic, latency, errors, predictions and model state.

Read from the prometheus-client metrics in functions/api/observability.py (what /metrics
exports), so the figures are this process's only: on Lambda each environment counts its own,
which the page says, linking the CloudWatch dashboard that adds them up. The panel is an htmx
fragment the page reloads every 5 s; requests per second are measured between those reloads.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from functions.api.auth import requires
from functions.api.deps import CacheDep
from functions.api.observability import METRICS, on_lambda
from functions.api.ui import PREFIX
from functions.api.ui.core import UiRoute, UiState, render

router = APIRouter(route_class=UiRoute, prefix=PREFIX, include_in_schema=False)

REFRESH_SECONDS = 5
#: The rate is taken over the snapshots of the last minute.
RATE_WINDOW_SECONDS = 60.0
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Traffic:
    requests: float
    client_errors: float
    server_errors: float
    #: Each route's latency histogram, summed: upper bound -> cumulative count.
    buckets: tuple[tuple[float, float], ...]
    latency_sum: float
    latency_count: float


def _is_ui(route: str) -> bool:
    return route == PREFIX or route.startswith(PREFIX + "/")


def read_traffic() -> Traffic:
    """The request counters and the latency histogram, without the UI's own requests."""
    requests = client = server = 0.0
    for family in METRICS.requests.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total") or _is_ui(sample.labels["route"]):
                continue
            requests += sample.value
            status = sample.labels["status"]
            if status.startswith("4"):
                client += sample.value
            elif status.startswith("5"):
                server += sample.value
    buckets: dict[float, float] = {}
    total = count = 0.0
    for family in METRICS.latency.collect():
        for sample in family.samples:
            if _is_ui(sample.labels["route"]):
                continue
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
    return Traffic(requests, client, server, tuple(sorted(buckets.items())), total, count)


def quantile(buckets: tuple[tuple[float, float], ...], q: float) -> float | None:
    """Prometheus' ``histogram_quantile``: linear within the bucket that holds rank q."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # the top finite bound, as Prometheus answers
            width = count - lower_count
            share = 0.0 if width <= 0 else (rank - lower_count) / width
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def read_predictions() -> list[tuple[str, str, str, float]]:
    """(model, version, risk level, count), by model and version."""
    rows = []
    for family in METRICS.predictions.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                rows.append(
                    (labels["model"], labels["version"], labels["risk_level"], sample.value)
                )
    return sorted(rows)


class _Rates:
    """Snapshots (time, requests) taken at each panel render: the rate between them."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=64)
        self._lock = threading.Lock()

    def rate(self, requests: float, started: float) -> float:
        now = time.monotonic()
        with self._lock:
            while self._points and now - self._points[0][0] > RATE_WINDOW_SECONDS:
                self._points.popleft()
            self._points.append((now, requests))
            first_at, first = self._points[0]
        if now - first_at < 1.0:  # the first look: the average since the process started
            first_at, first = started, 0.0
        return (requests - first) / max(now - first_at, 1e-9)


RATES = _Rates()


def _panel(request: Request, cache: Any) -> dict[str, Any]:
    traffic = read_traffic()
    mean = traffic.latency_sum / traffic.latency_count if traffic.latency_count else None
    percentiles = [(f"p{round(q * 100)}", quantile(traffic.buckets, q)) for q in QUANTILES]
    return {
        "traffic": traffic,
        "rate": RATES.rate(traffic.requests, request.app.state.started),
        "mean_ms": None if mean is None else mean * 1000,
        "percentiles": [(name, None if v is None else v * 1000) for name, v in percentiles],
        "predictions": read_predictions(),
        "served": cache.health(),
        "uptime": time.monotonic() - request.app.state.started,
        "refresh_seconds": REFRESH_SECONDS,
    }


@router.get("/serving", openapi_extra=requires("read"))
def serving(request: Request, cache: CacheDep) -> Response:
    """The serving dashboard; its panel reloads itself every few seconds (htmx)."""
    ui: UiState = request.app.state.ui
    return render(
        request, "serving.html", lambda_mode=on_lambda(), dashboard_url=ui.dashboard_url,
        **_panel(request, cache),
    )  # fmt: skip


@router.get("/serving/panel", openapi_extra=requires("read"))
def serving_panel(request: Request, cache: CacheDep) -> Response:
    """htmx fragment: the dashboard's figures, now."""
    return render(request, "_serving_panel.html", **_panel(request, cache))
