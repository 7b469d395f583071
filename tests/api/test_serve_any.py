"""``POST /predict/{name}`` for every served model: churn, rag, and a model with no package."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from functions.api.main import create_app
from models.rag.train import TrainConfig as RagConfig
from models.rag.train import run_training as train_rag
from tests.api.conftest import ADMIN, READER, SCORER, SEED_REQUEST, Store, make_settings, new_store
from tests.models_fixtures import save_model_files, train_booster

SERVED = "churn,rag,team-model,not-yet"
DEMAND = {"sessions_7d": 3, "playtime_7d": 0.5, "iap_count": 1}


class TeamFeatures(BaseModel):
    sessions_7d: Annotated[int, Field(ge=0, le=100, description="Sessions in the last 7 days.")]
    playtime_7d: float
    iap_count: int | None = None


class WiderFeatures(TeamFeatures):
    region: Annotated[str, Field(max_length=8)]


def _register_team_model(store: Store, folder: Path, *, seed: int = 0, wider: bool = False) -> int:
    files = save_model_files(folder, seed=seed)
    run = store.logger.log_experiment("team", artifacts={"model": files["json"]})
    version = store.registry.register_model(
        "team-model", run.run_id, "model", signature=WiderFeatures if wider else TeamFeatures
    )
    return version.version


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = new_store(tmp_path_factory.mktemp("serve-any"))
    store.train(promote="production")
    train_rag(RagConfig(), promote="production", logger=store.logger, registry=store.registry,
              show_progress=False)  # fmt: skip
    number = _register_team_model(store, store.folder / "team")
    store.registry.promote("team-model", number, to="production")
    return store


@pytest.fixture(scope="module")
def api(world: Store) -> Iterator[TestClient]:
    app = create_app(make_settings(world, SERVED_MODELS=SERVED))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_rag_answers_passages_with_the_version(api: TestClient) -> None:
    response = api.post("/predict/rag", json={"query": "how do I roll back a model?", "k": 3},
                        headers=SCORER)  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "v1"
    assert len(body["passages"]) == 3
    assert {"id", "score", "text", "source"} <= set(body["passages"][0])
    scores = [passage["score"] for passage in body["passages"]]
    assert scores == sorted(scores, reverse=True)


def test_rag_batch_answers_each_query_in_order(api: TestClient) -> None:
    queries = [{"query": "promote a model to production", "k": 2}, {"query": "metric history"}]
    response = api.post("/predict/rag/batch", json={"rows": queries}, headers=SCORER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "v1"
    assert len(body["predictions"][0]["passages"]) == 2
    single = api.post("/predict/rag", json=queries[0], headers=SCORER).json()
    assert body["predictions"][0]["passages"] == single["passages"]


def test_rag_refuses_a_bad_query_naming_the_field(api: TestClient) -> None:
    for body in ({"k": 3}, {"query": "x", "k": 0}, {"query": "x", "extra": 1}):
        response = api.post("/predict/rag", json=body, headers=SCORER)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_input"
    response = api.post("/predict/rag", json={"query": "x", "k": 0}, headers=SCORER)
    assert "k" in response.json()["error"]["message"]


def test_a_team_model_is_served_from_its_signature(api: TestClient) -> None:
    response = api.post("/predict/team-model", json=DEMAND, headers=SCORER)
    assert response.status_code == 200, response.text
    expected = train_booster(seed=0).inplace_predict(np.asarray([[3, 0.5, 1]], dtype=np.float32))
    assert response.json() == {"prediction": pytest.approx(float(expected[0]), rel=1e-6),
                               "model_version": "v1"}  # fmt: skip
    batch = api.post("/predict/team-model/batch", json={"rows": [DEMAND, DEMAND]}, headers=SCORER)
    assert batch.status_code == 200
    assert [p["prediction"] for p in batch.json()["predictions"]] == [
        response.json()["prediction"]
    ] * 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"playtime_7d": 0.5}, "sessions_7d"),  # required
        ({"sessions_7d": 101, "playtime_7d": 0.5}, "sessions_7d"),  # bound
        ({"sessions_7d": "3", "playtime_7d": 0.5}, "sessions_7d"),  # strict type
        ({"sessions_7d": 3, "playtime_7d": 0.5, "surprise": 1}, "surprise"),  # unknown field
    ],
)
def test_a_team_model_refuses_bad_rows_naming_the_field(
    api: TestClient, body: dict[str, Any], field: str
) -> None:
    response = api.post("/predict/team-model", json=body, headers=SCORER)
    assert response.status_code == 422
    assert field in response.json()["error"]["message"]
    batch = api.post("/predict/team-model/batch", json={"rows": [DEMAND, body]}, headers=SCORER)
    assert batch.status_code == 422
    assert field in batch.json()["error"]["message"]


@pytest.mark.parametrize(
    "path", ["/predict/nope", "/predict/nope/batch", "/predict/%3Cscript%3E..x"]
)
def test_a_model_that_is_not_served_is_404(api: TestClient, path: str) -> None:
    response = api.post(path, json=DEMAND, headers=SCORER)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "<" not in response.json()["error"]["message"]
    # The key is checked first: without one nobody learns which models exist.
    assert api.post(path, json=DEMAND).status_code == 401


def test_a_model_with_no_production_version_is_503_while_the_others_serve(api: TestClient) -> None:
    response = api.post("/predict/not-yet", json=DEMAND, headers=SCORER)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_production_model"
    assert response.headers["Retry-After"] == "30"
    assert api.post("/predict/churn", json=SEED_REQUEST, headers=SCORER).status_code == 200
    ready = api.get("/ready")
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "unavailable": ["not-yet"]}
    health = {model["model"]: model for model in api.get("/health").json()["models"]}
    assert health["not-yet"]["degraded"] is True
    assert health["rag"]["degraded"] is False


def test_scopes_apply_to_every_model(api: TestClient) -> None:
    for path in ("/predict/rag", "/predict/team-model"):
        assert api.post(path, json={"query": "x"}, headers=READER).status_code == 403
        assert api.post(path, json={"query": "x"}).status_code == 401


def test_the_prediction_counter_is_labelled_by_model(api: TestClient) -> None:
    api.post("/predict/rag", json={"query": "docs"}, headers=SCORER)
    api.post("/predict/team-model", json=DEMAND, headers=SCORER)
    text = api.get("/metrics", headers=READER).text
    assert (
        'predictions_total{model="rag",risk_level="none",variant="production",version="v1"}' in text
    )
    assert (
        'predictions_total{model="team-model",risk_level="none",variant="production",version="v1"}'
        in text
    )


def test_the_openapi_document_has_one_typed_operation_per_model(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]

    def body_ref(path: str) -> str:
        content = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        return str(content.get("$ref", "")).rsplit("/", 1)[-1]

    assert body_ref("/predict/churn") == "ChurnFeatures"
    assert body_ref("/predict/churn/batch") == "ChurnBatchRequest"
    assert body_ref("/predict/rag") == "RagQuery"
    assert body_ref("/predict/team-model") == "TeamModelRequest"
    team = components["TeamModelRequest"]
    assert set(team["properties"]) == {"sessions_7d", "playtime_7d", "iap_count"}
    assert team["properties"]["sessions_7d"]["maximum"] == 100
    assert team["properties"]["sessions_7d"]["description"] == "Sessions in the last 7 days."
    assert body_ref("/predict/not-yet") == ""  # nothing loaded at start: validated on arrival
    ok = paths["/predict/rag"]["post"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/RagResponse")
    assert "/predict/{name}" not in paths


def test_pins_work_for_every_model(world: Store, api: TestClient) -> None:
    pinned = api.post("/predict/rag?version=1", json={"query": "alias"}, headers=SCORER)
    assert pinned.status_code == 200
    assert pinned.json()["model_version"] == "v1"
    assert api.post("/predict/rag?version=9", json={"query": "x"}, headers=SCORER).status_code == (
        404
    )
    missing = api.post("/predict/rag?alias=staging", json={"query": "x"}, headers=SCORER)
    assert missing.status_code == 404


def test_a_new_model_is_served_after_a_refresh_without_a_restart(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.train(promote="production")
    app = create_app(make_settings(store, SERVED_MODELS="churn,team-model",
                                   MODEL_REFRESH_SECONDS=5))  # fmt: skip
    now = [1000.0]
    cache = app.state.model_cache
    cache.clock = lambda: now[0]
    for state in cache.states.values():
        state.checked_at = now[0]
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/predict/team-model", json=DEMAND, headers=SCORER).status_code == 503

    number = _register_team_model(store, tmp_path / "v1")
    promoted = client.post(f"/models/team-model/versions/{number}/promote",
                           json={"to": "production"}, headers=ADMIN)  # fmt: skip
    assert promoted.status_code == 200
    now[0] += 5.1
    served = client.post("/predict/team-model", json=DEMAND, headers=SCORER)
    assert served.status_code == 200
    assert served.json()["model_version"] == "v1"
    assert client.get("/ready").json() == {"ready": True, "unavailable": []}

    # v2 needs a field v1 did not have: requests are validated against the version served now.
    number = _register_team_model(store, tmp_path / "v2", seed=1, wider=True)
    store.registry.promote("team-model", number, to="production")
    now[0] += 5.1
    refused = client.post("/predict/team-model", json=DEMAND, headers=SCORER)
    assert refused.status_code == 422
    assert "region" in refused.json()["error"]["message"]
    wider = client.post("/predict/team-model", json={**DEMAND, "region": "eu"}, headers=SCORER)
    assert wider.status_code == 200
    assert wider.json()["model_version"] == "v2"


def test_served_model_names_are_validated_at_start(world: Store) -> None:
    with pytest.raises(ValueError, match="SERVED_MODELS"):
        make_settings(world, SERVED_MODELS="churn,../etc")
    settings = make_settings(world, SERVED_MODELS="churn, rag,churn")
    assert settings.served_models == ("churn", "rag")


def test_a_new_onnx_model_is_served_after_a_refresh_without_a_restart(tmp_path: Path) -> None:
    from tests.models_fixtures import save_onnx_model, train_logistic

    store = new_store(tmp_path)
    store.train(promote="production")
    app = create_app(make_settings(store, SERVED_MODELS="churn,team-onnx",
                                   MODEL_REFRESH_SECONDS=5))  # fmt: skip
    now = [1000.0]
    cache = app.state.model_cache
    cache.clock = lambda: now[0]
    for state in cache.states.values():
        state.checked_at = now[0]
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/predict/team-onnx", json=DEMAND, headers=SCORER).status_code == 503

    pipeline = train_logistic()
    path = save_onnx_model(tmp_path / "m.onnx", pipeline)
    run = store.logger.log_experiment("team", artifacts={"model": path})
    version = store.registry.register_model("team-onnx", run.run_id, "model", flavor="onnx",
                                            signature=TeamFeatures)  # fmt: skip
    store.registry.promote("team-onnx", version.version, to="production")
    now[0] += 5.1
    served = client.post("/predict/team-onnx", json=DEMAND, headers=SCORER)
    assert served.status_code == 200, served.text
    expected = pipeline.predict_proba(np.array([[3, 0.5, 1]]))[:, 1][0]
    assert served.json()["prediction"] == pytest.approx(float(expected), abs=1e-5)
    assert served.json()["model_version"] == "v1"
    refused = client.post("/predict/team-onnx", json={"sessions_7d": -1, "playtime_7d": 1},
                          headers=SCORER)  # fmt: skip
    assert refused.status_code == 422
    assert "sessions_7d" in refused.json()["error"]["message"]


def test_rag_passages_keep_their_text_byte_for_byte(api: TestClient) -> None:
    # The answer is UTF-8 (not \u escapes): a passage with non-ASCII text comes back as indexed.
    from models.rag.corpus import load_corpus, split_corpus
    from models.rag.train import CORPUS_DIR

    settings = RagConfig().retriever
    documents = load_corpus(CORPUS_DIR)
    chunks = {c.id: c for c in split_corpus(documents, settings.chunk_size, settings.overlap)}
    query = {"query": "lambda duration cold starts GB-s cost per month", "k": 10}
    response = api.post("/predict/rag", json=query, headers=SCORER)
    assert response.status_code == 200, response.text
    passages = response.json()["passages"]
    assert [p["text"] for p in passages] == [chunks[p["id"]].text for p in passages]
    non_ascii = [p["text"] for p in passages if not p["text"].isascii()]
    assert non_ascii, "the query should find a passage with non-ASCII text"
    assert json.dumps(non_ascii[0], ensure_ascii=False).encode() in response.content
