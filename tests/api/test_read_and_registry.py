"""Read endpoints, registry moves over HTTP, and dependency failures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN, READER, Store
from tracking import StoreUnavailable


def test_models_and_versions(client: TestClient, trained: Store) -> None:
    trained.train(seed=21)
    models = client.get("/models", headers=READER).json()
    assert [m["name"] for m in models["items"]] == ["churn"]
    assert models["items"][0]["aliases"] == {"production": 1}
    assert models["next_token"] is None
    assert client.get("/models/churn", headers=READER).json()["latest_version"] == 2
    first = client.get("/models/churn/versions?max_results=1", headers=READER).json()
    assert [v["version"] for v in first["items"]] == [2]
    second = client.get(f"/models/churn/versions?max_results=1&page_token={first['next_token']}",
                        headers=READER).json()  # fmt: skip
    assert [v["version"] for v in second["items"]] == [1]
    assert second["items"][0]["stage"] == "production"
    assert second["items"][0]["metadata"]["risk_thresholds"]["high"] > 0
    for path in ("/models/nope", "/models/nope/versions", "/models/nope/history"):
        response = client.get(path, headers=READER)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/models/a..b", "/models/%2e%2e", "/models/" + "x" * 200,
                                  "/runs/..%2f..%2fetc", "/experiments/a%20b/runs"])  # fmt: skip
def test_bad_names_in_paths(ro_client: TestClient, path: str) -> None:
    response = ro_client.get(path, headers=READER)
    assert response.status_code in {404, 422}, path
    assert response.json()["error"]["code"] in {"not_found", "invalid_input"}


def test_experiments_runs_and_history(ro_client: TestClient, shared_store: Store) -> None:
    experiments = ro_client.get("/experiments?max_results=1", headers=READER).json()
    assert [e["name"] for e in experiments["items"]] == ["churn"]
    runs = ro_client.get("/experiments/churn/runs", headers=READER).json()["items"]
    (run,) = runs
    filtered = ro_client.get(
        "/experiments/churn/runs",
        params={"filter": "metrics.test_auc > 0.5 and params.max_depth = '5'",
                "order_by": ["metrics.test_auc DESC"], "max_results": 5},
        headers=READER,
    ).json()  # fmt: skip
    assert [r["run_id"] for r in filtered["items"]] == [run["run_id"]]
    none = ro_client.get("/experiments/churn/runs", params={"filter": "metrics.test_auc > 2"},
                         headers=READER).json()  # fmt: skip
    assert none["items"] == []
    detail = ro_client.get(f"/runs/{run['run_id']}", headers=READER).json()
    assert set(detail["datasets"]) == {"train", "validation", "test"}
    assert "model" in detail["artifacts"]
    assert detail["params"]["max_depth"] == "5"
    assert "test_auc" in detail["metrics"]
    page = ro_client.get(f"/runs/{run['run_id']}/metrics/validation_auc?max_results=3",
                         headers=READER).json()  # fmt: skip
    assert [m["step"] for m in page["items"]] == [0, 1, 2]
    assert page["next_token"]
    rest = ro_client.get(
        f"/runs/{run['run_id']}/metrics/validation_auc",
        params={"page_token": page["next_token"]},
        headers=READER,
    ).json()
    assert rest["items"][0]["step"] == 3


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/experiments/churn/runs?filter=metrics.auc%20%3E", 422),
        ("/experiments/churn/runs?order_by=metrics.auc%20SIDEWAYS", 422),
        ("/experiments/churn/runs?page_token=garbage", 422),
        ("/experiments/churn/runs?order_by=metrics.auc&page_token=eyJxIjoxfQ", 422),
        ("/experiments/churn/runs?filter=" + "(" * 60 + "metrics.auc>1" + ")" * 60, 422),
        ("/experiments/churn/runs?filter=params.model%20IN%20()", 422),
        ("/experiments/missing/runs", 404),
        ("/experiments?page_token=garbage", 422),
        ("/experiments?max_results=0", 422),
        ("/experiments?max_results=5000", 422),
        ("/runs/" + "0" * 32, 404),
        ("/runs/" + "0" * 32 + "/metrics/loss", 404),
    ],
)
def test_read_errors(ro_client: TestClient, path: str, status: int) -> None:
    response = ro_client.get(path, headers=READER)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "request_id"}


def test_a_page_token_of_another_search_is_refused(client: TestClient, trained: Store) -> None:
    trained.train(seed=23)  # a second run, so the first page has a next one
    first = client.get(
        "/experiments/churn/runs", params={"max_results": 1, "order_by": ["metrics.test_auc"]},
        headers=ADMIN,
    ).json()  # fmt: skip
    assert first["next_token"]
    second = client.get(
        "/experiments/churn/runs",
        params={"max_results": 1, "order_by": ["metrics.test_auc"],
                "page_token": first["next_token"]},
        headers=ADMIN,
    ).json()  # fmt: skip
    assert second["items"][0]["run_id"] != first["items"][0]["run_id"]
    other = client.get(
        "/experiments/churn/runs",
        params={"page_token": first["next_token"], "order_by": ["start_time"]},
        headers=ADMIN,
    )
    assert other.status_code == 422
    assert "different search" in other.json()["error"]["message"]


def test_promote_and_rollback_over_http(client: TestClient, trained: Store) -> None:
    trained.train(seed=22)
    promoted = client.post(
        "/models/churn/versions/2/promote",
        json={"to": "production", "reason": "better auc"},
        headers=ADMIN,
    )
    assert promoted.status_code == 200
    assert promoted.json()["stage"] == "production"
    rolled = client.post("/models/churn/rollback", json={"reason": "regression"}, headers=ADMIN)
    assert rolled.status_code == 200
    assert rolled.json()["version"] == 1
    history = client.get("/models/churn/history", headers=READER).json()
    moves = [h for h in history if h["action"] in {"promote", "rollback"}]
    assert [(h["action"], h["actor"], h["reason"]) for h in moves][-2:] == [
        ("promote", "admin", "better auc"),
        ("rollback", "admin", "regression"),
    ]
    again = client.post("/models/churn/rollback", headers=ADMIN)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    "body",
    [
        {"to": "production", "stage": "production"},
        {"to": "production", "sha256": "0" * 64},
        {"to": "production", "version": 3},
        {"to": "production", "created_at": 1},
        {"to": "production", "artifact_uri": "s3://evil/x"},
        {"to": "../prod"},
        {},
        {"to": "production", "reason": "x" * 1001},
    ],
)
def test_promote_refuses_server_owned_and_bad_fields(client: TestClient, body: dict) -> None:
    response = client.post("/models/churn/versions/1/promote", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_promote_errors(client: TestClient) -> None:
    missing = client.post("/models/churn/versions/9/promote", json={"to": "production"},
                          headers=ADMIN)  # fmt: skip
    assert missing.status_code == 404
    staging_prod = client.post("/models/churn/versions/1/promote", json={"to": "staging"},
                               headers=ADMIN)  # fmt: skip
    assert staging_prod.status_code == 409


def test_store_failure_is_503_with_retry_after(
    trained: Store, app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory()

    def unavailable(*_: object, **__: object) -> None:
        raise StoreUnavailable("DynamoDB throttled the request")

    monkeypatch.setattr(app.state.registry, "list_models", unavailable)
    response = TestClient(app).get("/models", headers=READER)
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["error"] == {
        "code": "store_unavailable",
        # The SDK's message (which may name a table or a bucket) goes to the log only.
        "message": "a storage dependency is unavailable; try again later",
        "request_id": response.headers["x-request-id"],
    }


def test_no_storage_location_is_shown(client: TestClient, trained: Store) -> None:
    """Runs and versions name their artifacts and datasets by name and SHA-256, not by URI."""
    version = client.get("/models/churn/versions", headers=READER).json()["items"][0]
    assert "artifact_uri" not in version
    assert version["artifact_name"] == "model"
    assert len(version["sha256"]) == 64
    run = client.get(f"/runs/{version['run_id']}", headers=READER).json()
    assert run["artifacts"]
    assert run["datasets"]
    for entry in (*run["artifacts"].values(), *run["datasets"].values()):
        assert "uri" not in entry
    promoted = client.post("/models/churn/versions/1/promote", json={"to": "staging"},
                           headers=ADMIN).json()  # fmt: skip
    assert "artifact_uri" not in promoted
    # The SDK, for operators, still has the locations.
    assert trained.registry.get_version("churn", 1).artifact_uri.startswith("file://")


def test_unexpected_error_is_a_bare_500(
    trained: Store, app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_factory()

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app.state.logger, "list_experiments", broken)
    response = TestClient(app, raise_server_exceptions=False).get("/experiments", headers=READER)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret" not in response.text
    assert "Traceback" not in response.text


def test_health_and_ready(ro_client: TestClient) -> None:
    health = ro_client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    (model,) = body["models"]
    assert model["model"] == "churn"
    assert model["version"] == "v1"
    assert len(model["sha256"]) == 12
    assert model["loaded_at"] is not None
    assert model["last_refresh_ok"] is True
    assert ro_client.get("/ready").json() == {"ready": True, "unavailable": []}
    metrics = ro_client.get("/metrics", headers=READER)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "cold_starts_total" in metrics.text
