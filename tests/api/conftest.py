"""An embedded store with a trained churn model, and apps and clients built on it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.api.main import create_app
from functions.api.settings import ApiSettings
from models.churn.train import TrainConfig, TrainResult, run_training
from tracking import ExperimentLogger, ModelRegistry

SEED_REQUEST = {"player_id": "p_123", "sessions_7d": 4, "playtime_7d": 95.5, "iap_count": 1}
SMALL = TrainConfig(rows=1000, n_estimators=15, early_stopping_rounds=5, seed=11)
KEYS = {
    "admin": ("admin-secret-key", ["predict", "read", "admin"]),
    "reader": ("reader-secret-key", ["read"]),
    "scorer": ("scorer-secret-key", ["predict"]),
}
ADMIN = {"X-API-Key": KEYS["admin"][0]}
READER = {"X-API-Key": KEYS["reader"][0]}
SCORER = {"X-API-Key": KEYS["scorer"][0]}


def key_config() -> str:
    return json.dumps([
        {"name": name, "scopes": scopes, "sha256": hashlib.sha256(key.encode()).hexdigest()}
        for name, (key, scopes) in KEYS.items()
    ])  # fmt: skip


@dataclass
class Store:
    tracking_uri: str
    artifact_uri: str
    logger: ExperimentLogger
    registry: ModelRegistry
    folder: Path

    def train(self, *, promote: str | None = None, seed: int = 11) -> TrainResult:
        config = TrainConfig(**{**SMALL.__dict__, "seed": seed})
        return run_training(config, promote=promote, logger=self.logger, registry=self.registry,
                            show_progress=False, data_dir=self.folder / "data")  # fmt: skip


def new_store(folder: Path) -> Store:
    tracking_uri = f"sqlite:///{folder / 'tracking.db'}"
    artifact_uri = f"file://{folder / 'artifacts'}"
    logger = ExperimentLogger(tracking_uri, artifact_uri)
    registry = ModelRegistry(store=logger.metadata, artifact_store=logger.artifacts, actor="sdk")  # type: ignore[arg-type]
    return Store(tracking_uri, artifact_uri, logger, registry, folder)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return new_store(tmp_path)


@pytest.fixture
def trained(store: Store) -> Store:
    store.train(promote="production")
    return store


def make_settings(store: Store, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "TRACKING_URI": store.tracking_uri,
        "ARTIFACT_URI": store.artifact_uri,
        "API_KEYS": key_config(),
        "MODEL_CACHE_DIR": str(store.folder / "cache"),
        "MODEL_REFRESH_SECONDS": 30,
    }
    values.update(overrides)
    return ApiSettings(**values)


@pytest.fixture
def app_factory(store: Store) -> Callable[..., FastAPI]:
    def build(**overrides: Any) -> FastAPI:
        return create_app(make_settings(store, **overrides))

    return build


@pytest.fixture
def client(trained: Store, app_factory: Callable[..., FastAPI]) -> Iterator[TestClient]:
    """A client on a store of the test's own, for tests that change the store."""
    with TestClient(app_factory(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = new_store(tmp_path_factory.mktemp("shared"))
    store.train(promote="production")
    return store


@pytest.fixture(scope="module")
def ro_client(shared_store: Store) -> Iterator[TestClient]:
    """A client shared by a module's read-only tests (training once keeps the suite fast)."""
    app = create_app(make_settings(shared_store))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
