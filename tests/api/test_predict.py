"""Predictions: single rows, batches, pinned versions, and the errors around them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN, READER, SCORER, SEED_REQUEST, Store

NUMBER_FIELDS = ["sessions_7d", "playtime_7d", "iap_count", "days_since_install",
                 "sessions_prev_7d", "avg_session_minutes", "friends_count", "level",
                 "iap_spend_30d", "days_since_last_login"]  # fmt: skip
NON_FINITE = ["NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", '"nan"', '"inf"']


def test_seed_request(ro_client: TestClient) -> None:
    response = ro_client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"player_id", "churn_probability", "risk_level", "model_version"}
    assert body["player_id"] == "p_123"
    assert 0.0 <= body["churn_probability"] <= 1.0
    assert body["risk_level"] in {"low", "medium", "high"}
    assert body["model_version"] == "v1"
    assert response.headers["x-request-id"]


def test_prediction_matches_the_registered_model(client: TestClient, trained: Store) -> None:
    from models.base import load_predictor
    from models.churn.features import ChurnFeatures

    expected = load_predictor(trained.registry, "churn").predict_one(
        ChurnFeatures.model_validate(SEED_REQUEST)
    )
    assert client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER).json() == (
        expected.model_dump()
    )


def test_batch_answers_in_order(ro_client: TestClient) -> None:
    rows = [SEED_REQUEST | {"player_id": f"p_{i}", "sessions_7d": i} for i in range(25)]
    response = ro_client.post("/predict/churn/batch", json={"rows": rows}, headers=SCORER)
    assert response.status_code == 200
    body = response.json()
    assert [p["player_id"] for p in body["predictions"]] == [f"p_{i}" for i in range(25)]
    assert body["model_version"] == "v1"
    single = ro_client.post("/predict/churn", json=rows[7], headers=SCORER).json()
    assert body["predictions"][7] == single


def test_batch_limits(trained: Store, app_factory: Callable[..., FastAPI]) -> None:
    client = TestClient(app_factory(MAX_BATCH_ROWS=5))
    rows = [SEED_REQUEST] * 6
    too_many = client.post("/predict/churn/batch", json={"rows": rows}, headers=SCORER)
    assert too_many.status_code == 422
    assert "at most 5 rows" in too_many.json()["error"]["message"]
    empty = client.post("/predict/churn/batch", json={"rows": []}, headers=SCORER)
    assert empty.status_code == 422
    one_bad = client.post("/predict/churn/batch", json={"rows": [SEED_REQUEST, {"x": 1}]},
                          headers=SCORER)  # fmt: skip
    assert one_bad.status_code == 422


def test_pinned_version_and_alias(client: TestClient, trained: Store) -> None:
    trained.train(seed=12)  # v2, not promoted
    assert client.post("/predict/churn?version=2", json=SEED_REQUEST,
                       headers=SCORER).json()["model_version"] == "v2"  # fmt: skip
    assert client.post("/predict/churn", json=SEED_REQUEST,
                       headers=SCORER).json()["model_version"] == "v1"  # fmt: skip
    trained.registry.promote("churn", 2, to="staging")
    staged = client.post("/predict/churn?alias=staging", json=SEED_REQUEST, headers=SCORER)
    assert staged.json()["model_version"] == "v2"
    batch = client.post("/predict/churn/batch?version=2", json={"rows": [SEED_REQUEST]},
                        headers=SCORER)  # fmt: skip
    assert batch.json()["model_version"] == "v2"
    for query, status in (("version=99", 404), ("alias=challenger", 404),
                          ("version=1&alias=staging", 422), ("version=0", 422),
                          ("alias=../x", 422), ("version=abc", 422)):  # fmt: skip
        response = client.post(f"/predict/churn?{query}", json=SEED_REQUEST, headers=SCORER)
        assert response.status_code == status, query
        assert response.json()["error"]["code"]


def test_no_production_model_is_503(store: Store, app_factory: Callable[..., FastAPI]) -> None:
    store.train()  # registered, never promoted
    client = TestClient(app_factory())
    response = client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_production_model"
    assert response.headers["retry-after"]
    assert client.get("/ready").status_code == 503
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["degraded"] is True


def _tamper(store: Store) -> None:
    version = store.registry.get_version_by_alias("churn", "production")
    Path(version.artifact_uri.removeprefix("file://")).write_bytes(b"{tampered}")


def test_checksum_mismatch_at_start_is_503(
    trained: Store, app_factory: Callable[..., FastAPI]
) -> None:
    _tamper(trained)
    client = TestClient(app_factory())
    response = client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_integrity_error"
    assert client.get("/health").json()["models"][0]["last_error"] == "integrity_error"


def test_checksum_mismatch_later_keeps_serving_the_verified_model(
    trained: Store, app_factory: Callable[..., FastAPI]
) -> None:
    app = app_factory()
    client = TestClient(app)
    assert client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER).status_code == 200
    trained.train(seed=13, promote="production")  # v2 is production...
    _tamper(trained)  # ...but its bytes are corrupt
    now = [0.0]
    app.state.model_cache.clock = lambda: now[0]
    app.state.model_cache.states["churn"].checked_at = -100.0
    response = client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER)
    assert response.status_code == 200
    assert response.json()["model_version"] == "v1"
    health = client.get("/health").json()
    assert health["degraded"] is True
    assert health["models"][0]["last_error"] == "integrity_error"
    metrics = client.get("/metrics", headers=READER).text
    assert 'model_refresh_failures_total{model="churn"}' in metrics


def _clocked(app_factory: Callable[..., FastAPI]) -> tuple[TestClient, list[float]]:
    """A client of an app refreshing every 5 s by a clock the test moves (``now[0]``), with
    the churn alias just read."""
    app = app_factory(MODEL_REFRESH_SECONDS=5)
    now = [1000.0]
    cache = app.state.model_cache
    cache.clock = lambda: now[0]
    cache.states["churn"].checked_at = now[0]
    return TestClient(app), now


def test_promotion_and_rollback_take_effect_within_the_refresh_interval(
    trained: Store, app_factory: Callable[..., FastAPI]
) -> None:
    client, now = _clocked(app_factory)

    def served() -> str:
        response = client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER)
        assert response.status_code == 200
        return str(response.json()["model_version"])

    trained.train(seed=14)
    promoted = client.post("/models/churn/versions/2/promote", json={"to": "production"},
                           headers=ADMIN)  # fmt: skip
    assert promoted.status_code == 200
    now[0] += 4.9
    assert served() == "v1"  # inside the interval: the alias is not read again
    now[0] += 0.2
    assert served() == "v2"  # the interval passed: the move is picked up, no restart
    assert client.post("/models/churn/rollback", headers=ADMIN).status_code == 200
    now[0] += 5.1
    assert served() == "v1"


def test_a_swap_and_only_a_swap_lets_the_old_version_be_collected(
    trained: Store, app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.api import heap

    swaps: list[int] = []
    monkeypatch.setattr(heap, "after_swap", lambda: swaps.append(1))
    client, now = _clocked(app_factory)
    now[0] += 5.1
    assert client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER).status_code == 200
    assert swaps == []  # the alias was read again, nothing moved
    trained.train(seed=15, promote="production")
    now[0] += 5.1
    response = client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER)
    assert response.json()["model_version"] == "v2"
    assert swaps == [1]


@pytest.mark.parametrize("field", NUMBER_FIELDS)
@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_numbers_are_422(ro_client: TestClient, field: str, value: str) -> None:
    body = (
        '{"player_id": "p_1", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1, '
        f'"{field}": {value}}}'
    )
    for path, payload in (("/predict/churn", body), ("/predict/churn/batch",
                                                     '{"rows": [' + body + "]}")):  # fmt: skip
        response = ro_client.post(path, content=payload, headers=SCORER | {
            "content-type": "application/json"})  # fmt: skip
        assert response.status_code == 422, (path, field, value)
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        # -NaN is not even Python's JSON: the body as a whole is refused.
        assert (field if value != "-NaN" else "not valid JSON") in error["message"]
        assert value.strip('"') not in error["message"]  # the input is never echoed


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b'{"player_id": ', 422),
        (b"not json", 422),
        (b"[1, 2]", 422),
        (b'{"player_id": "p", "sessions_7d": 1, "playtime_7d": 1, "iap_count": 1, "x": 1}', 422),
        (b'{"player_id": "../../etc", "sessions_7d": 1, "playtime_7d": 1, "iap_count": 1}', 422),
        (b'{"sessions_7d": 1, "playtime_7d": 1, "iap_count": 1}', 422),
        (b"", 422),
    ],
)
def test_malformed_bodies(ro_client: TestClient, payload: bytes, status: int) -> None:
    response = ro_client.post("/predict/churn", content=payload,
                           headers=SCORER | {"content-type": "application/json"})  # fmt: skip
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert "Traceback" not in response.text


def test_oversized_bodies_are_413(ro_client: TestClient) -> None:
    big = b'{"player_id": "' + b"p" * 1_100_000 + b'"}'
    response = ro_client.post("/predict/churn", content=big,
                           headers=SCORER | {"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    rows = b'{"rows": [' + b",".join([b'{"player_id": "' + b"p" * 60 + b'"}'] * 80_000) + b"]}"
    assert len(rows) > 6_000_000
    batch = ro_client.post("/predict/churn/batch", content=rows,
                        headers=SCORER | {"content-type": "application/json"})  # fmt: skip
    assert batch.status_code == 413
    # A batch body over the single-row limit but under the batch limit is accepted.
    ok_rows = [SEED_REQUEST | {"player_id": f"p{i:06d}"} for i in range(1000)]
    accepted = ro_client.post("/predict/churn/batch", json={"rows": ok_rows}, headers=SCORER)
    assert accepted.status_code == 200
    streamed = ro_client.post("/predict/churn", content=iter([b'{"a": "', b"x" * 1_100_000, b'"}']),
                           headers=SCORER | {"content-type": "application/json"})  # fmt: skip
    assert streamed.status_code == 413


def test_predictions_are_counted_in_metrics(ro_client: TestClient) -> None:
    ro_client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER)
    text = ro_client.get("/metrics", headers=READER).text
    assert 'predictions_total{model="churn",risk_level=' in text
    assert 'version="v1"' in text
    assert 'http_requests_total{method="POST",route="/predict/churn",status="200"}' in text
    assert (
        'http_request_duration_seconds_bucket{le="0.001",method="POST",route="/predict/churn"}'
        in text
    )
    assert 'model_load_seconds_count{model="churn"}' in text


@pytest.mark.parametrize(
    "body",
    [
        {"prediction": 1e-05, "model_version": "v1"},  # written 0.00001: the same number
        {"predictions": [{"p": 5e-324}, {"p": -0.0}, {"p": 1e16}, {"p": 1.5e300}], "n": 2**70},
        {"passages": [{"text": "p50 ≤ 5 ms — 40 µs", "score": 0.1}], "model_version": "v2"},
    ],
)
def test_an_answer_is_the_json_values_it_was_given(body: dict[str, object]) -> None:
    import json

    from functions.api.routes.predict import _json

    response = _json(body, "production")
    assert json.loads(response.body) == body
    headers = dict(response.raw_headers)
    assert int(headers[b"content-length"]) == len(response.body)
    assert headers[b"x-model-variant"] == b"production"


def test_an_answers_non_finite_floats_are_written_as_json_writes_them() -> None:
    import json

    from functions.api.routes.predict import _json

    body = {"values": [float("nan"), float("inf"), -float("inf")]}
    assert _json(body, "production").body == json.dumps(body, separators=(",", ":")).encode()
