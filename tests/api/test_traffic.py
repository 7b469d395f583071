"""``/models/{name}/traffic``: read for read keys, set and clear for admin keys, once per key."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN, READER, SCORER, Store
from tracking.events.webhooks import verify_signature

PATH = "/models/churn/traffic"
CANARY = {
    "weights": {"production": 90, "challenger": 10},
    "shadow": ["staging"],
    "sticky": "player_id",
    "reason": "canary 10%",
}


@pytest.fixture
def variants(trained: Store) -> Store:
    """churn v1 in production, v2 as challenger, v3 in staging."""
    trained.train(seed=21)
    trained.train(seed=31)
    trained.registry.promote("churn", 2, to="challenger")
    trained.registry.promote("churn", 3, to="staging")
    return trained


def _traffic_entries(client: TestClient) -> list[dict[str, Any]]:
    history = client.get("/models/churn/history", headers=READER).json()
    return [h for h in history if h["action"] == "traffic"]


def _events(store: Store) -> list[Any]:
    return list(store.registry.store.list_events(max_results=1000).items)


def test_default_policy_and_scopes(client: TestClient, variants: Store) -> None:
    shown = client.get(PATH, headers=READER)
    assert shown.status_code == 200
    assert shown.json()["weights"] == {"production": 100}
    assert shown.json()["revision"] == 0
    assert client.get(PATH, headers=SCORER).status_code == 403
    assert client.get(PATH).status_code == 401
    assert client.put(PATH, json=CANARY, headers=READER).status_code == 403
    assert client.delete(PATH, headers=READER).status_code == 403
    missing = client.get("/models/nope/traffic", headers=READER)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_set_and_clear(client: TestClient, variants: Store) -> None:
    answer = client.put(PATH, json=CANARY, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    policy = answer.json()
    assert policy["weights"] == {"production": 90, "challenger": 10}
    assert policy["shadow"] == ["staging"]
    assert policy["sticky"] == "player_id"
    assert policy["updated_by"] == "admin"  # the key's name
    assert client.get(PATH, headers=READER).json() == policy
    cleared = client.delete(PATH, params={"reason": "rolled out"}, headers=ADMIN)
    assert cleared.status_code == 200
    assert cleared.json()["weights"] == {"production": 100}
    assert cleared.json()["revision"] == 2
    assert [(h["actor"], h["reason"]) for h in _traffic_entries(client)] == [
        ("admin", "canary 10%"),
        ("admin", "rolled out"),
    ]
    assert [e.event.type.value for e in _events(variants)][-2:] == [
        "traffic.changed",
        "traffic.changed",
    ]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"weights": {"production": 90}}, 422, "sum to 100"),
        ({"weights": {"production": 90, "ghost": 10}}, 422, "no 'ghost' alias"),
        ({"weights": {"production": 90.0, "challenger": 10}}, 422, "weights"),
        ({"weights": {"production": "90", "challenger": 10}}, 422, "weights"),
        ({"weights": {"production": True}}, 422, "weights"),
        ({"weights": {"production": 110, "challenger": -10}}, 422, "less than or equal to 100"),
        ({"weights": {}}, 422, "weights"),
        ({"weights": {"../x": 100}}, 422, "weights"),
        ({"weights": {"production": 100}, "shadow": ["production"]}, 422, "both"),
        ({"weights": {"production": 100}, "shadow": ["ghost"]}, 422, "ghost"),
        ({"weights": {"production": 100}, "sticky": "a-b"}, 422, "sticky"),
        ({"weights": {"production": 100}, "extra": 1}, 422, "extra"),
        ({"shadow": ["staging"]}, 422, "weights"),
    ],
)
def test_bad_policies_are_json_errors_with_nothing_written(
    client: TestClient, variants: Store, body: dict[str, Any], status: int, fragment: str
) -> None:
    events = len(_events(variants))
    answer = client.put(PATH, json=body, headers=ADMIN)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert fragment in error["message"]
    assert client.get(PATH, headers=READER).json()["revision"] == 0
    assert len(_events(variants)) == events
    assert _traffic_entries(client) == []


def test_unknown_model_is_404(client: TestClient, variants: Store) -> None:
    answer = client.put("/models/nope/traffic", json=CANARY, headers=ADMIN)
    assert answer.status_code == 404
    assert client.delete("/models/nope/traffic", headers=ADMIN).status_code == 404


def test_a_lost_race_is_409_and_writes_nothing(
    variants: Store, app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory()
    store = app.state.registry.store
    read = store.get_traffic
    rival = app.state.registry.__class__(store=store, artifact_store=app.state.registry.artifacts)

    def read_then_lose(name: str) -> Any:
        seen = read(name)
        # Another writer commits between this request's read and its write.
        monkeypatch.setattr(store, "get_traffic", read)
        rival.set_traffic(name, weights={"production": 50, "challenger": 50}, actor="rival")
        return seen

    monkeypatch.setattr(store, "get_traffic", read_then_lose)
    with TestClient(app, raise_server_exceptions=False) as client:
        events = len(_events(variants))
        answer = client.put(PATH, json=CANARY, headers=ADMIN)
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "conflict"
        policy = client.get(PATH, headers=READER).json()
        assert policy["weights"] == {"production": 50, "challenger": 50}
        assert policy["updated_by"] == "rival"
        assert len(_events(variants)) == events + 1  # the rival's, and no other


def test_idempotency_key_changes_once(client: TestClient, variants: Store) -> None:
    headers = {**ADMIN, "Idempotency-Key": "canary-1"}
    first = client.put(PATH, json=CANARY, headers=headers)
    again = client.put(PATH, json=CANARY, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replay"] == "true"
    assert again.content == first.content
    other = client.put(PATH, json={"weights": {"production": 100}}, headers=headers)
    assert other.status_code == 422
    delete_headers = {**ADMIN, "Idempotency-Key": "clear-1"}
    cleared = client.delete(PATH, headers=delete_headers)
    replay = client.delete(PATH, headers=delete_headers)
    assert replay.headers["idempotent-replay"] == "true"
    assert replay.content == cleared.content
    assert len(_traffic_entries(client)) == 2
    traffic_events = [e for e in _events(variants) if e.event.type.value == "traffic.changed"]
    assert len(traffic_events) == 2


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_changes_are_delivered_to_webhooks_after_the_answer(
    variants: Store,
    app_factory: Callable[..., FastAPI],
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, received = receiver
    secret = "webhook-secret-123"
    hooks = [{"name": "ops", "url": url, "secret": secret, "events": ["traffic.changed"]}]
    app = app_factory(EVENT_WEBHOOKS=json.dumps(hooks), EVENT_WEBHOOK_ALLOW_HTTP_LOOPBACK=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.put(PATH, json=CANARY, headers=ADMIN).status_code == 200
        # TestClient runs background tasks before it returns.
        ((headers, body),) = received
        sent = json.loads(body)
        assert sent["type"] == "traffic.changed"
        assert sent["traffic"]["weights"] == {"production": 90, "challenger": 10}
        assert sent["actor"] == "admin"
        assert verify_signature(secret, headers, body, now=int(headers["X-Event-Timestamp"]))
        promoted = client.post(
            "/models/churn/versions/2/promote", json={"to": "production"}, headers=ADMIN
        )
        assert promoted.status_code == 200
        assert len(received) == 1  # alias.moved is filtered out for this webhook


def test_a_bad_webhook_setting_stops_the_app(variants: Store) -> None:
    from pydantic import ValidationError

    from tests.api.conftest import make_settings

    secret = "do-not-print-this-secret"
    with pytest.raises(ValidationError) as refused:
        make_settings(
            variants,
            EVENT_WEBHOOKS=json.dumps([{"name": "x", "url": "ftp://x", "secret": secret}]),
        )
    assert "https" in str(refused.value)
    assert secret not in str(refused.value)


@pytest.mark.parametrize("method", ["POST", "PATCH", "OPTIONS"])
def test_a_wrong_method_lists_every_method_of_the_path(client: TestClient, method: str) -> None:
    """Three routes serve the path: ``Allow`` names all of them, not the first one's alone."""
    answer = client.request(method, PATH, headers=ADMIN)
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert answer.headers["allow"] == "DELETE, GET, PUT"
    # A path of one route still names its own methods only.
    single = client.request(method, "/models/churn/history", headers=ADMIN)
    assert single.status_code == 405
    assert single.headers["allow"] == "GET"
