"""Webhook delivery on every backend, to a real HTTP receiver on 127.0.0.1.

The clock is injected: retries are made due by moving it forward, never by waiting.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.conftest import Backend
from tests.models_fixtures import save_model_files
from tracking import ExperimentLogger, ModelRegistry
from tracking.clock import now_ms
from tracking.config import EventsConfig
from tracking.entities import EventStatus
from tracking.events.dispatch import Dispatcher
from tracking.events.webhooks import verify_signature
from tracking.stores.ports.store import TrackingStore

SECRET = "s3cret-s3cret-s3cret"


@dataclass
class Receiver:
    """A webhook receiver that answers ``failures`` times with ``status``, then 204."""

    url: str = ""
    failures: int = 0
    status: int = 500
    location: str | None = None
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.received.append((dict(self.headers.items()), body))
                failing = state.failures > 0
                state.failures -= 1
            self.send_response(state.status if failing else 204)
            if failing and state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/registry"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def registry(backend: Backend, tmp_path: Path) -> ModelRegistry:
    logger = ExperimentLogger(metadata_store=backend.metadata, artifact_store=backend.artifacts)
    files = save_model_files(tmp_path / "files")
    run = logger.log_experiment("churn", artifacts={"model": files["json"]})
    registry = ModelRegistry(store=backend.metadata, artifact_store=backend.artifacts, actor="ops")
    registry.register_model("churn", run.run_id, "model")
    return registry


def _config(url: str, **overrides: Any) -> EventsConfig:
    hooks = [{"name": "ops", "url": url, "secret": SECRET}]
    settings: dict[str, Any] = {
        "EVENT_WEBHOOKS": json.dumps(hooks),
        "EVENT_WEBHOOK_ALLOW_HTTP_LOOPBACK": True,
        "EVENT_MAX_ATTEMPTS": 4,
        "EVENT_BACKOFF_SECONDS": 10,
        "EVENT_BACKOFF_MAX_SECONDS": 25,
        "EVENT_WEBHOOK_TIMEOUT_SECONDS": 5,
        **overrides,
    }
    return EventsConfig(**settings)


def _store(registry: ModelRegistry) -> TrackingStore:
    return registry.store


def test_signed_delivery_to_a_local_receiver(registry: ModelRegistry, receiver: Receiver) -> None:
    clock = Clock()
    dispatcher = Dispatcher(_store(registry), _config(receiver.url), clock=clock)
    (record,) = _store(registry).list_events().items
    report = dispatcher.deliver_due()
    assert report.delivered == [record.event.event_id]
    ((headers, body),) = receiver.received
    assert verify_signature(SECRET, headers, body, now=clock.now // 1000)
    assert not verify_signature("another-secret-value", headers, body, now=clock.now // 1000)
    assert not verify_signature(SECRET, headers, body + b" ", now=clock.now // 1000)
    # A replay long after the signed timestamp is refused by the receiver's check.
    assert not verify_signature(SECRET, headers, body, now=clock.now // 1000 + 3600)
    assert headers["X-Event-Id"] == record.event.event_id
    assert headers["X-Event-Type"] == "model_version.registered"
    assert headers["X-Event-Signature"].startswith("v1=")
    sent = json.loads(body)
    assert sent["event_id"] == record.event.event_id
    assert sent["model"] == "churn"
    assert sent["to"] == 1
    assert sent["actor"] == "ops"
    stored = _store(registry).get_event(record.event.event_id)
    assert stored.status is EventStatus.DELIVERED
    assert stored.delivered_to == ["ops"]
    # Delivered events are not sent again.
    assert dispatcher.deliver_due().delivered == []
    assert len(receiver.received) == 1


def test_retries_back_off_then_deliver(registry: ModelRegistry, receiver: Receiver) -> None:
    receiver.failures = 2
    clock = Clock()
    dispatcher = Dispatcher(_store(registry), _config(receiver.url), clock=clock)
    (record,) = _store(registry).list_events().items
    event_id = record.event.event_id
    assert dispatcher.deliver_due().retrying == [event_id]
    first = _store(registry).get_event(event_id)
    assert first.status is EventStatus.PENDING
    assert first.attempts == 1
    assert first.last_error == "ops: HTTP 500"
    assert first.next_attempt_at == clock.now + 10_000
    # Not due yet: nothing is sent.
    clock.now += 9_999
    assert dispatcher.deliver_due().retrying == []
    assert len(receiver.received) == 1
    clock.now += 1
    assert dispatcher.deliver_due().retrying == [event_id]
    assert _store(registry).get_event(event_id).next_attempt_at == clock.now + 20_000
    clock.now += 20_000
    assert dispatcher.deliver_due().delivered == [event_id]
    done = _store(registry).get_event(event_id)
    assert done.status is EventStatus.DELIVERED
    assert done.attempts == 3
    assert done.last_error is None
    ids = {headers["X-Event-Id"] for headers, _ in receiver.received}
    assert ids == {event_id}
    assert len(receiver.received) == 3


def test_dead_after_max_attempts_and_listed(registry: ModelRegistry, receiver: Receiver) -> None:
    receiver.failures = 100
    clock = Clock()
    dispatcher = Dispatcher(_store(registry), _config(receiver.url), clock=clock)
    (record,) = _store(registry).list_events().items
    delays = []
    for _ in range(4):
        before = clock.now
        dispatcher.deliver_due()
        clock.now = max(
            clock.now, _store(registry).get_event(record.event.event_id).next_attempt_at
        )
        delays.append(clock.now - before)
    dead = _store(registry).get_event(record.event.event_id)
    assert dead.status is EventStatus.DEAD
    assert dead.attempts == 4
    assert dead.last_error == "ops: HTTP 500"
    assert delays[:3] == [10_000, 20_000, 25_000]  # exponential, capped
    assert [r.event.event_id for r in _store(registry).list_events(EventStatus.DEAD).items] == [
        record.event.event_id
    ]
    clock.now += 10**9
    assert dispatcher.deliver_due().delivered == []
    assert len(receiver.received) == 4


def test_redirects_are_not_followed(registry: ModelRegistry, receiver: Receiver) -> None:
    receiver.failures = 1
    receiver.status = 302
    receiver.location = "http://169.254.169.254/latest/meta-data/"
    dispatcher = Dispatcher(_store(registry), _config(receiver.url), clock=Clock())
    (record,) = _store(registry).list_events().items
    dispatcher.deliver_due()
    assert len(receiver.received) == 1
    assert _store(registry).get_event(record.event.event_id).last_error == "ops: HTTP 302"


def test_refused_address_counts_as_a_failed_attempt(registry: ModelRegistry) -> None:
    config = _config("https://169.254.169.254/hook")
    dispatcher = Dispatcher(_store(registry), config, clock=Clock())
    (record,) = _store(registry).list_events().items
    assert dispatcher.deliver_due().retrying == [record.event.event_id]
    error = _store(registry).get_event(record.event.event_id).last_error or ""
    assert "not a public address" in error


def test_the_connection_goes_to_the_checked_address(registry: ModelRegistry) -> None:
    """The name is resolved once and the request sent to that address, named by Host and SNI."""
    seen: list[httpx.Request] = []
    calls: list[str] = []

    def resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        # A rebinding resolver: a public address first, the metadata address afterwards.
        address = "93.184.216.34" if len(calls) == 1 else "169.254.169.254"
        return [(2, 1, 6, "", (address, port))]

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    dispatcher = Dispatcher(
        _store(registry),
        _config("https://hooks.example.com/in"),
        clock=Clock(),
        transport=httpx.MockTransport(answer),
        resolver=resolver,
    )
    assert len(dispatcher.deliver_due().delivered) == 1
    (request,) = seen
    assert calls == ["hooks.example.com"]
    assert str(request.url) == "https://93.184.216.34/in"
    assert request.headers["Host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_event_filters_and_partial_delivery(registry: ModelRegistry, receiver: Receiver) -> None:
    hooks = [
        {"name": "all", "url": receiver.url, "secret": SECRET},
        {"name": "moves", "url": receiver.url, "secret": SECRET, "events": ["alias.moved"]},
        {"name": "broken", "url": "https://10.0.0.1/", "secret": SECRET, "events": ["alias.moved"]},
    ]
    config = _config(receiver.url, EVENT_WEBHOOKS=json.dumps(hooks))
    registry.promote("churn", 1, to="production")
    clock = Clock()
    dispatcher = Dispatcher(_store(registry), config, clock=clock)
    registered, moved = _store(registry).list_events().items
    report = dispatcher.deliver_due()
    assert report.delivered == [registered.event.event_id]  # only "all" wants it
    assert report.retrying == [moved.event.event_id]
    state = _store(registry).get_event(moved.event.event_id)
    assert sorted(state.delivered_to) == ["all", "moves"]
    assert len(receiver.received) == 3
    clock.now = state.next_attempt_at
    dispatcher.deliver_due()
    assert len(receiver.received) == 3  # the retry goes to "broken" only


def test_nothing_configured_delivers_nothing(registry: ModelRegistry) -> None:
    dispatcher = Dispatcher(_store(registry), EventsConfig(EVENT_WEBHOOKS=""), clock=Clock())
    assert not dispatcher.enabled
    assert dispatcher.deliver_due().delivered == []
    (record,) = _store(registry).list_events().items
    assert record.status is EventStatus.PENDING
    assert record.attempts == 0


def test_two_dispatchers_never_both_take_an_event(
    registry: ModelRegistry, receiver: Receiver
) -> None:
    store = _store(registry)
    clock = Clock()
    first = Dispatcher(store, _config(receiver.url), clock=clock)
    second = Dispatcher(store, _config(receiver.url), clock=clock)
    (stale,) = store.list_events().items
    assert first.deliver(stale) is not None
    # The second read the same record before the first claimed it.
    assert second.deliver(stale) is None
    assert len(receiver.received) == 1
