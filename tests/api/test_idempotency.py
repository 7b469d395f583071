"""``Idempotency-Key`` on the mutating routes: one side effect per key, the same answer again."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.api import idempotency
from tests.api.conftest import ADMIN, KEYS, READER, Store
from tracking import StoreUnavailable

PROMOTE = "/models/churn/versions/2/promote"


def _moves(client: TestClient) -> list[dict[str, Any]]:
    history = client.get("/models/churn/history", headers=READER).json()
    return [h for h in history if h["action"] in {"promote", "rollback"}]


def _with_key(key: str, headers: dict[str, str] = ADMIN) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def test_the_same_request_twice_moves_once(client: TestClient, trained: Store) -> None:
    trained.train(seed=21)
    before = len(_moves(client))
    body = {"to": "production", "reason": "better auc"}
    first = client.post(PROMOTE, json=body, headers=_with_key("promote-2"))
    second = client.post(PROMOTE, json=body, headers=_with_key("promote-2"))
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.content == second.content
    assert first.json()["stage"] == "production"
    assert "idempotent-replay" not in first.headers
    assert second.headers["idempotent-replay"] == "true"
    assert len(_moves(client)) == before + 1
    # Key order in the body does not matter: it is the same request.
    headers = {**_with_key("promote-2"), "content-type": "application/json"}
    reordered = client.post(PROMOTE, content=json.dumps(dict(reversed(body.items()))),
                            headers=headers)  # fmt: skip
    assert reordered.status_code == 200
    assert reordered.content == first.content


def test_without_the_header_nothing_changes(client: TestClient, trained: Store) -> None:
    trained.train(seed=21)
    plain = client.post(PROMOTE, json={"to": "staging"}, headers=ADMIN)
    keyed = client.post(PROMOTE, json={"to": "production"}, headers=_with_key("k"))
    assert plain.status_code == keyed.status_code == 200
    assert "idempotent-replay" not in plain.headers
    assert set(plain.json()) == set(keyed.json())
    assert (plain.json()["stage"], keyed.json()["stage"]) == ("staging", "production")


def test_concurrent_requests_with_one_key_move_once(client: TestClient, trained: Store) -> None:
    trained.train(seed=21)
    before = len(_moves(client))
    body = {"to": "production", "reason": "race"}

    def send(_: int) -> tuple[int, bytes]:
        response = client.post(PROMOTE, json=body, headers=_with_key("race-key"))
        return response.status_code, response.content

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(8)))
    assert {status for status, _ in results} == {200}
    assert len({content for _, content in results}) == 1
    moves = _moves(client)
    assert len(moves) == before + 1
    assert moves[-1]["reason"] == "race"


def test_the_same_key_with_another_body_is_refused(client: TestClient, trained: Store) -> None:
    trained.train(seed=21)
    first = client.post(PROMOTE, json={"to": "staging"}, headers=_with_key("k1"))
    assert first.status_code == 200
    before = len(_moves(client))
    other = client.post(PROMOTE, json={"to": "production"}, headers=_with_key("k1"))
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "invalid_input"
    assert "different request" in other.json()["error"]["message"]
    elsewhere = client.post("/models/churn/versions/1/promote", json={"to": "staging"},
                            headers=_with_key("k1"))  # fmt: skip
    assert elsewhere.status_code == 422
    assert len(_moves(client)) == before


def test_keys_of_different_api_keys_do_not_collide(
    trained: Store, app_factory: Callable[..., FastAPI]
) -> None:
    trained.train(seed=21)
    specs = [
        {"name": name, "scopes": scopes, "sha256": hashlib.sha256(key.encode()).hexdigest()}
        for name, (key, scopes) in {**KEYS, "ops": ("ops-secret-key", ["read", "admin"])}.items()
    ]
    ops = {"X-API-Key": "ops-secret-key"}
    with TestClient(app_factory(API_KEYS=json.dumps(specs)), raise_server_exceptions=False) as c:
        first = c.post(PROMOTE, json={"to": "staging"}, headers=_with_key("shared"))
        # Another body under the same header value: a 422 for one key, a new request for the
        # other.
        second = c.post(PROMOTE, json={"to": "production"}, headers=_with_key("shared", ops))
        assert first.status_code == second.status_code == 200
        assert "idempotent-replay" not in second.headers
        actors = [(m["actor"], m["to_version"]) for m in _moves(c)[-2:]]
        assert actors == [("admin", 2), ("ops", 2)]


@pytest.mark.parametrize("key", ["", "a" * 129, "has space", "-leading", "a/b"])
def test_bad_header_is_refused(client: TestClient, key: str) -> None:
    response = client.post("/models/churn/versions/1/promote", json={"to": "staging"},
                           headers=_with_key(key))  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_rollback_and_error_answers_are_replayed(client: TestClient, trained: Store) -> None:
    trained.train(seed=21)
    assert client.post(PROMOTE, json={"to": "production"}, headers=ADMIN).status_code == 200
    before = len(_moves(client))
    first = client.post("/models/churn/rollback", json={"reason": "r"}, headers=_with_key("rb"))
    second = client.post("/models/churn/rollback", json={"reason": "r"}, headers=_with_key("rb"))
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.json()["version"] == 1
    assert len(_moves(client)) == before + 1
    # A 4xx is an answer too: replayed, not run again.
    missing = client.post("/models/churn/versions/9/promote", json={"to": "staging"},
                          headers=_with_key("nine"))  # fmt: skip
    again = client.post("/models/churn/versions/9/promote", json={"to": "staging"},
                        headers=_with_key("nine"))  # fmt: skip
    assert missing.status_code == again.status_code == 404
    assert missing.content == again.content
    assert again.headers["idempotent-replay"] == "true"


@pytest.mark.parametrize("failure", [StoreUnavailable("throttled"), RuntimeError("boom")])
def test_a_failed_request_releases_its_key(
    trained: Store,
    app_factory: Callable[..., FastAPI],
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
) -> None:
    trained.train(seed=21)
    app = app_factory()
    registry = app.state.registry
    promote = registry.promote
    calls = iter([failure])

    def flaky(*args: Any, **kwargs: Any) -> Any:
        error = next(calls, None)
        if error is not None:
            raise error
        return promote(*args, **kwargs)

    monkeypatch.setattr(registry, "promote", flaky)
    with TestClient(app, raise_server_exceptions=False) as client:
        failed = client.post(PROMOTE, json={"to": "production"}, headers=_with_key("retry"))
        assert failed.status_code in {500, 503}
        retried = client.post(PROMOTE, json={"to": "production"}, headers=_with_key("retry"))
        assert retried.status_code == 200
        assert "idempotent-replay" not in retried.headers
        replayed = client.post(PROMOTE, json={"to": "production"}, headers=_with_key("retry"))
        assert replayed.headers["idempotent-replay"] == "true"
        assert replayed.content == retried.content


def test_a_request_still_running_answers_409(
    client: TestClient, trained: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.2)
    store = trained.registry.store
    body = {"to": "staging"}
    path = "/models/churn/versions/1/promote"
    held = idempotency.fingerprint("POST", path, {"to": "staging", "reason": None})
    now = int(time.time())
    assert store.claim("admin:busy", held, now, now + 60) is None
    response = client.post(path, json=body, headers=_with_key("busy"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    # Once the first request's answer is stored, the same request gets it.
    store.complete("admin:busy", held, 200, '{"done":true}')
    replayed = client.post(path, json=body, headers=_with_key("busy"))
    assert replayed.status_code == 200
    assert replayed.json() == {"done": True}
