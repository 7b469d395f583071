"""The Lambda handler as the runtime calls it, in an environment that looks like Lambda.

The store is trained once per session; each test gets a freshly built handler, obtained through
the public path ``functions.api.main.handler``, with cold-start state and metrics reset.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.trained import TrainedStore
from tests.trained import trained_store as train_store

from .support import API_KEY, FUNCTION_NAME, LambdaContext


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> TrainedStore:
    """An embedded store with a small churn model and the retriever in production (v1 each)."""
    return train_store(tmp_path_factory.mktemp("lambda-store"), rag=True)


def _clear_caches() -> None:
    from aws_lambda_powertools.metrics.provider.cold_start import reset_cold_start_flag

    from functions.api import main
    from functions.api.observability import metrics
    from functions.api.settings import get_settings

    main._app.cache_clear()
    main._handler.cache_clear()
    get_settings.cache_clear()
    metrics.clear_metrics()
    reset_cold_start_flag()  # type: ignore[no-untyped-call]


@pytest.fixture
def lambda_env(
    trained_store: TrainedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The environment of the deployed function, pointed at the trained embedded store."""
    key = [{"name": "local", "scopes": ["predict", "read"],
            "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]  # fmt: skip
    for name in ("API_KEYS_SECRET_ARN", "POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "MLOps")
    monkeypatch.setenv("TRACKING_URI", trained_store.tracking_uri)
    monkeypatch.setenv("ARTIFACT_URI", trained_store.artifact_uri)
    monkeypatch.setenv("API_KEYS", json.dumps(key))
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "model-cache"))
    monkeypatch.setenv("MODEL_REFRESH_SECONDS", "30")
    monkeypatch.setenv("SERVED_MODELS", "churn,rag")
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture
def handler(lambda_env: None) -> Any:
    """``functions.api.main.handler``, built (models loaded) as in the Lambda init phase."""
    from functions.api import main

    return main.handler


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every line the API's Powertools logger writes during the test, formatted as on Lambda."""
    from functions.api.observability import logger

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    collector = Collect()
    collector.setFormatter(logger.registered_formatter)
    target = logging.getLogger(logger.name)  # the stdlib logger behind Powertools' Logger
    target.addHandler(collector)
    yield lines
    target.removeHandler(collector)
