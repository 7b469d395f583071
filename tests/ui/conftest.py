"""Apps on a trained store plus the UI corpus (tests/ui/corpus.py), and logged-in clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.api.main import create_app
from functions.api.settings import ApiSettings
from tests.api.conftest import Store, new_store
from tests.ui import corpus


@dataclass
class UiStore:
    store: Store
    seeded: corpus.Seeded


def build_store(folder: Path) -> UiStore:
    store = new_store(folder)
    store.train(promote="production")
    store.train(seed=12)  # version 2, in no alias yet
    seeded = corpus.seed(store.logger, store.registry, folder / "corpus")
    store.registry.promote("churn", 2, to="staging", reason=corpus.XSS[0], actor="sdk")
    return UiStore(store, seeded)


def settings_for(store: Store, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "TRACKING_URI": store.tracking_uri,
        "ARTIFACT_URI": store.artifact_uri,
        "API_KEYS": corpus.key_config(),
        "MODEL_CACHE_DIR": str(store.folder / "cache"),
        "UI_SESSION_SECRET": "s" * 40,
        **overrides,
    }
    return ApiSettings(**values)


def login(client: TestClient, who: str = "admin") -> str:
    """Log ``client`` in with a corpus key; returns the session's CSRF token."""
    form = client.get("/ui/login")
    token = re.search(r'class="login".*?name="csrf_token" value="([^"]+)"', form.text, re.S)
    assert token is not None
    answer = client.post(
        "/ui/login",
        data={"api_key": corpus.KEYS[who][0], "csrf_token": token.group(1), "next": ""},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/ui/models").text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


@pytest.fixture(scope="module")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> UiStore:
    return build_store(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def ui_app(ui_store: UiStore) -> FastAPI:
    return create_app(settings_for(ui_store.store))


@pytest.fixture
def anonymous(ui_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(ui_app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def reader(ui_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(ui_app, follow_redirects=False) as client:
        login(client, "reader")
        yield client


@pytest.fixture
def admin(ui_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(ui_app, follow_redirects=False) as client:
        login(client, "admin")
        yield client


@pytest.fixture
def fresh(tmp_path: Path) -> Callable[..., tuple[UiStore, FastAPI]]:
    """A store and app of the test's own, for tests that move aliases."""

    def build(**overrides: Any) -> tuple[UiStore, FastAPI]:
        built = build_store(tmp_path / "store")
        return built, create_app(settings_for(built.store, **overrides))

    return build
