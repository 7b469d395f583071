"""Serving by traffic policy: weighted variants, stickiness, shadows, pins, hot policy changes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.api.main import create_app
from tests.api.conftest import READER, SCORER, SEED_REQUEST, Store, make_settings, new_store

PLAYERS = [f"p_{i}" for i in range(400)]


def _row(player: str) -> dict[str, Any]:
    return {**SEED_REQUEST, "player_id": player}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """churn v1 in production, v2 the challenger, v3 staging."""
    store = new_store(tmp_path_factory.mktemp("traffic"))
    store.train(promote="production", seed=11)
    store.train(seed=12)
    store.registry.promote("churn", 2, to="challenger")
    store.train(promote="staging", seed=13)
    return store


@pytest.fixture
def app(store: Store) -> Iterator[FastAPI]:
    store.registry.set_traffic("churn", weights={"production": 90, "challenger": 10},
                               shadow=["staging"], sticky="player_id", reason="canary")  # fmt: skip
    app = create_app(make_settings(store, MODEL_REFRESH_SECONDS=5))
    yield app
    store.registry.clear_traffic("churn", reason="test over")


def _refresh_now(app: FastAPI) -> None:
    for state in app.state.model_cache.states.values():
        state.checked_at = float("-inf")


def test_each_player_stays_on_one_variant_and_the_split_follows_the_weights(
    app: FastAPI,
) -> None:
    client = TestClient(app)
    seen: dict[str, set[tuple[str, str]]] = {}
    for _ in range(3):
        for player in PLAYERS:
            response = client.post("/predict/churn", json=_row(player), headers=SCORER)
            assert response.status_code == 200
            variant = response.headers["X-Model-Variant"]
            seen.setdefault(player, set()).add((variant, response.json()["model_version"]))
    assert all(len(answers) == 1 for answers in seen.values())
    versions = {answer for answers in seen.values() for answer in answers}
    assert versions == {("production", "v1"), ("challenger", "v2")}
    share = Counter(next(iter(a))[0] for a in seen.values())["challenger"] / len(PLAYERS)
    assert 0.04 < share < 0.17  # 10 % of 400 players, hashed (a random policy id each run)


def test_the_answer_is_the_variant_version_s_own(app: FastAPI) -> None:
    client = TestClient(app)
    for player in PLAYERS[:60]:
        routed = client.post("/predict/churn", json=_row(player), headers=SCORER)
        alias = routed.headers["X-Model-Variant"]
        pinned = client.post(f"/predict/churn?alias={alias}", json=_row(player), headers=SCORER)
        assert pinned.headers["X-Model-Variant"] == alias
        assert routed.json() == pinned.json()  # the shadow never changes an answer


def test_shadows_score_the_same_rows_after_the_answer(app: FastAPI) -> None:
    client = TestClient(app)
    for player in PLAYERS[:100]:  # policy ids are random: 100 players make both variants sure
        assert client.post("/predict/churn", json=_row(player), headers=SCORER).status_code == 200
    assert app.state.shadow.drain(timeout=30)
    metrics = client.get("/metrics", headers=READER).text
    line = next(line for line in metrics.splitlines()
                if line.startswith('shadow_predictions_total{model="churn",variant="staging",'
                                   'version="v3"}'))  # fmt: skip
    assert float(line.rsplit(" ", 1)[1]) >= 100
    assert 'shadow_prediction_seconds_count{model="churn",variant="staging"}' in metrics
    assert 'variant="challenger"' in metrics
    health = client.get("/health").json()["models"][0]["traffic"]
    assert health["weights"] == {"production": "v1", "challenger": "v2"}
    assert health["shadow"] == {"staging": "v3"}


def test_a_batch_routes_each_row_and_says_which_variants_answered(app: FastAPI) -> None:
    client = TestClient(app)
    rows = [_row(player) for player in PLAYERS[:80]]
    batch = client.post("/predict/churn/batch", json={"rows": rows}, headers=SCORER)
    assert batch.status_code == 200
    assert set(batch.headers["X-Model-Variant"].split(",")) == {"production", "challenger"}
    assert set(batch.json()["model_version"].split(",")) == {"v1", "v2"}
    for row, answer in zip(rows, batch.json()["predictions"], strict=True):
        single = client.post("/predict/churn", json=row, headers=SCORER).json()
        assert answer == single


def test_pins_win_over_the_policy(app: FastAPI) -> None:
    client = TestClient(app)
    for player in PLAYERS[:30]:
        by_version = client.post("/predict/churn?version=3", json=_row(player), headers=SCORER)
        assert by_version.headers["X-Model-Variant"] == "pinned"
        assert by_version.json()["model_version"] == "v3"


def test_a_new_policy_and_a_clear_take_effect_on_refresh(store: Store, app: FastAPI) -> None:
    client = TestClient(app)

    def variants() -> Counter[str]:
        return Counter(
            client.post("/predict/churn", json=_row(p), headers=SCORER).headers["X-Model-Variant"]
            for p in PLAYERS[:100]
        )

    assert set(variants()) == {"production", "challenger"}
    store.registry.set_traffic("churn", weights={"challenger": 100}, reason="all in")
    _refresh_now(app)
    assert variants() == Counter({"challenger": 100})
    store.registry.clear_traffic("churn", reason="rollback")
    _refresh_now(app)
    assert variants() == Counter({"production": 100})
    assert client.get("/health").json()["models"][0]["traffic"] is None


def test_an_alias_that_cannot_be_served_falls_back_to_production(store: Store) -> None:
    broken = store.train(seed=14).version
    assert broken is not None
    store.registry.promote("churn", broken.version, to="doomed")
    Path(broken.artifact_uri.removeprefix("file://")).write_bytes(b"{tampered}")
    store.registry.set_traffic("churn", weights={"production": 50, "doomed": 50}, reason="x")
    try:
        client = TestClient(create_app(make_settings(store)))
        answers = Counter(
            client.post("/predict/churn", json=_row(p), headers=SCORER).json()["model_version"]
            for p in PLAYERS[:50]
        )
        assert answers == Counter({"v1": 50})  # the tampered version never answers
        traffic = client.get("/health").json()["models"][0]["traffic"]
        assert traffic["unavailable"] == "doomed"
        assert traffic["weights"] == {"production": "v1", "doomed": None}
    finally:
        store.registry.clear_traffic("churn", reason="test over")


def test_without_a_policy_production_answers_with_its_header(store: Store) -> None:
    client = TestClient(create_app(make_settings(store)))
    response = client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER)
    assert response.headers["X-Model-Variant"] == "production"
    assert response.json()["model_version"] == "v1"


def test_requests_without_a_sticky_value_are_split_at_random(tmp_path: Any) -> None:
    store = new_store(tmp_path)
    store.train(promote="production", seed=11)
    store.train(seed=12)
    store.registry.promote("churn", 2, to="challenger")
    store.registry.set_traffic("churn", weights={"production": 50, "challenger": 50},
                               reason="no stickiness")  # fmt: skip
    client = TestClient(create_app(make_settings(store)))
    answers = Counter(
        client.post("/predict/churn", json=SEED_REQUEST, headers=SCORER).headers["X-Model-Variant"]
        for _ in range(200)
    )
    assert set(answers) == {"production", "challenger"}


def test_served_predictions_and_shadows_reach_the_log_and_the_report(tmp_path: Path) -> None:
    # A store of its own: other tests' apps flush their prediction logs on their own schedule.
    store = new_store(tmp_path)
    store.train(promote="production", seed=11)
    store.train(seed=12)
    store.registry.promote("churn", 2, to="challenger")
    store.train(promote="staging", seed=13)
    store.registry.set_traffic("churn", weights={"production": 90, "challenger": 10},
                               shadow=["staging"], sticky="player_id", reason="canary")  # fmt: skip
    app = create_app(make_settings(store))
    client = TestClient(app)
    served = Counter(
        client.post("/predict/churn", json=_row(player), headers=SCORER).headers["X-Model-Variant"]
        for player in PLAYERS[:200]
    )
    assert app.state.shadow.drain(timeout=30)
    assert app.state.prediction_log.flush(10.0)
    report = client.get("/models/churn/traffic/report?since=1h", headers=READER)
    assert report.status_code == 200, report.text
    rows = report.json()["variants"]
    entries = rows if isinstance(rows, list) else [{"variant": k, **v} for k, v in rows.items()]
    requests = {entry["variant"]: entry["requests"] for entry in entries}
    assert requests == {"production": served["production"], "challenger": served["challenger"],
                        "staging": 200}  # the shadow scored every request  # fmt: skip
