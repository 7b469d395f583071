"""POST /feedback/{name}, GET /models/{name}/traffic/report and /drift over a real store."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.api.prediction_log import PredictionLog
from models.churn.data import generate
from models.churn.features import FEATURE_NAMES
from tests.api.conftest import ADMIN, READER, SCORER, Store
from tracking.monitoring.reports import load_profile


@pytest.fixture
def monitored(trained: Store, app_factory: Callable[..., FastAPI]) -> Iterator[TestClient]:
    app = app_factory(PREDICTION_LOG_FEATURES="true", LOAD_MODELS_ON_START="false")
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _recorder(client: TestClient) -> PredictionLog:
    found: PredictionLog = client.app.state.prediction_log  # type: ignore[attr-defined]
    return found


def _seed(client: TestClient, variant: str, labels: np.ndarray, scores: np.ndarray,
          version: str = "v1", features: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
    now = int(time.time() * 1000)
    records = [
        {"request_id": f"{variant}-{i}", "row": 0, "time": now, "model": "churn",
         "variant": variant, "version": version, "score": float(s), "risk_level": "low",
         "sticky": f"p{variant}{i}", **({} if features is None else {"features": features[i]})}
        for i, s in enumerate(scores)
    ]  # fmt: skip
    assert _recorder(client).record(records) == len(records)
    assert _recorder(client).flush(10.0)


def test_feedback_joins_labels_and_the_report_compares_variants(monitored: TestClient) -> None:
    rng = np.random.default_rng(1)
    n = 400
    labels = {v: rng.integers(0, 2, n) for v in ("production", "challenger")}
    _seed(monitored, "production", labels["production"], rng.random(n))  # a random scorer
    good = np.clip(labels["challenger"] * 0.6 + rng.random(n) * 0.4, 0, 1)
    _seed(monitored, "challenger", labels["challenger"], good)  # a perfect ranking
    by_request = [{"request_id": f"production-{i}", "label": int(y)}
                  for i, y in enumerate(labels["production"])]  # fmt: skip
    by_key = [{"key": f"pchallenger{i}", "label": int(y)}
              for i, y in enumerate(labels["challenger"])]  # fmt: skip
    for body in (by_request, by_key):
        answer = monitored.post("/feedback/churn", json=body, headers=SCORER)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"accepted": n, "model": "churn"}

    answer = monitored.get("/models/churn/traffic/report?since=1h", headers=READER)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["requests"] == 2 * n
    assert report["baseline"] == "production"
    variants = {v["variant"]: v for v in report["variants"]}
    assert variants["production"]["labelled"] == n
    assert variants["challenger"]["labelled"] == n
    assert variants["challenger"]["metrics"]["auc"]["value"] == 1.0
    production_auc = variants["production"]["metrics"]["auc"]
    assert production_auc["low"] < 0.5 < production_auc["high"]
    assert variants["production"]["scores"]["count"] == n
    (difference,) = report["differences"]
    assert difference["variant"] == "challenger"
    assert difference["metrics"]["auc"]["low"] > 0.3


def test_drift_flags_shifted_features_and_scores(monitored: TestClient, trained: Store) -> None:
    profile = load_profile(trained.registry, "churn", 1)
    assert profile is not None
    assert "sessions_7d" in profile["features"]
    rng = np.random.default_rng(2)
    n = 1000
    # Fresh players from the generator the model was trained on: the same distribution.
    fresh = generate(n, seed=99)
    column = FEATURE_NAMES.index("sessions_7d")
    quiet = [{"sessions_7d": float(row[column])} for row in fresh.features]
    shifted = [{"sessions_7d": 500.0} for _ in range(n)]
    _seed(monitored, "production", np.zeros(n), rng.random(n) ** 4, features=quiet)
    _seed(monitored, "challenger", np.zeros(n), np.full(n, 0.99), features=shifted)
    answer = monitored.get("/models/churn/drift?since=24h", headers=READER)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["features_logged"] is True
    variants = {v["variant"]: v for v in report["variants"]}
    challenger = variants["challenger"]
    assert challenger["features"]["sessions_7d"]["drift"] is True
    assert challenger["features"]["sessions_7d"]["psi"] > 0.2
    assert challenger["score"]["drift"] is True
    assert "sessions_7d" in challenger["drifted"]
    assert variants["production"]["features"]["sessions_7d"]["psi"] < 0.2


def test_drift_without_features_reports_the_score_only(
    trained: Store, app_factory: Callable[..., FastAPI]
) -> None:
    with TestClient(app_factory(LOAD_MODELS_ON_START="false")) as client:
        rng = np.random.default_rng(3)
        _seed(client, "production", np.zeros(200), rng.random(200),
              features=[{"sessions_7d": 1.0}] * 200)  # fmt: skip
        (entry,) = client.get("/models/churn/drift", headers=READER).json()["variants"]
    assert entry["features"] is None
    assert entry["score"]["psi"] is not None
    assert "score drift only" in entry["note"]


def test_unknown_versions_have_no_profile(monitored: TestClient) -> None:
    _seed(monitored, "production", np.zeros(5), np.full(5, 0.5), version="v99")
    (entry,) = monitored.get("/models/churn/drift", headers=READER).json()["variants"]
    assert entry["note"] == "no training profile for this version"


BAD_WINDOWS = ["24", "0h", "32d", "1y", "-1h", "h", "9999999h", "1.5h"]


def test_a_bad_window_is_422(monitored: TestClient) -> None:
    # One app for every case: each app needs a trained model, which costs seconds.
    for path, since in itertools.product(
        ("/models/churn/traffic/report", "/models/churn/drift"), BAD_WINDOWS
    ):
        answer = monitored.get(path, params={"since": since}, headers=READER)
        assert answer.status_code == 422, (path, since)
        assert "since" in answer.json()["error"]["message"]


def test_unknown_models_are_404(monitored: TestClient) -> None:
    for method, path, headers in (
        ("GET", "/models/nope/traffic/report", READER),
        ("GET", "/models/nope/drift", READER),
        ("POST", "/feedback/nope", SCORER),
    ):
        body = [{"request_id": "r", "label": 1}] if method == "POST" else None
        answer = monitored.request(method, path, json=body, headers=headers)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "not_found"


BAD_FEEDBACK: list[Any] = [
    [],
    [{"label": 1}],  # neither request_id nor key
    [{"request_id": "r", "key": "k", "label": 1}],  # both
    [{"request_id": "r", "label": 2}],
    [{"request_id": "r", "label": "yes"}],
    [{"request_id": "../../x", "label": 1}],
    [{"request_id": "r", "label": 1, "extra": True}],
    {"request_id": "r", "label": 1},  # not a list
]


def test_bad_feedback_is_422_and_writes_nothing(monitored: TestClient, trained: Store) -> None:
    for body in BAD_FEEDBACK:
        answer = monitored.post("/feedback/churn", json=body, headers=SCORER)
        assert answer.status_code == 422, (body, answer.text)
    assert trained.registry.artifacts.list_objects("feedback") == []


def test_feedback_over_the_limit_is_422(
    trained: Store, app_factory: Callable[..., FastAPI]
) -> None:
    with TestClient(app_factory(FEEDBACK_MAX_ITEMS="3", LOAD_MODELS_ON_START="false")) as client:
        body = [{"request_id": f"r{i}", "label": 0} for i in range(4)]
        answer = client.post("/feedback/churn", json=body, headers=SCORER)
    assert answer.status_code == 422
    assert "at most 3" in answer.json()["error"]["message"]


def test_scopes(monitored: TestClient) -> None:
    body = [{"request_id": "r", "label": 1}]
    assert monitored.post("/feedback/churn", json=body, headers=READER).status_code == 403
    assert monitored.get("/models/churn/drift", headers=SCORER).status_code == 403
    assert monitored.get("/models/churn/drift").status_code == 401
    assert monitored.post("/feedback/churn", json=body, headers=ADMIN).status_code == 202
