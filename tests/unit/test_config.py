"""TrackingConfig and the composition root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracking.backends import build_artifact_store, build_metadata_store, sqlite_path
from tracking.config import load_config
from tracking.errors import InvalidInput


def test_defaults_are_the_embedded_store() -> None:
    config = load_config()
    assert config.tracking_uri == "sqlite:///.tracking/tracking.db"
    assert config.artifact_uri == "file://.tracking/artifacts"


def test_environment_then_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKING_URI", "dynamodb://prod")
    monkeypatch.setenv("ARTIFACT_URI", "s3://bucket/prefix")
    monkeypatch.setenv("TRACKING_ACTOR", "ci-bot")
    config = load_config()
    assert (config.tracking_uri, config.artifact_uri, config.actor) == (
        "dynamodb://prod",
        "s3://bucket/prefix",
        "ci-bot",
    )
    assert load_config(tracking_uri="sqlite:///x.db").tracking_uri == "sqlite:///x.db"


def test_sqlite_paths() -> None:
    assert sqlite_path("sqlite:///rel/t.db") == Path("rel/t.db")
    assert sqlite_path("sqlite:////abs/t.db") == Path("/abs/t.db")


@pytest.mark.parametrize(
    "uri", ["postgres://x", "sqlite://", "sqlite:///", "dynamodb://", "dynamodb:///", "tracking.db"]
)
def test_bad_tracking_uri(uri: str) -> None:
    with pytest.raises(InvalidInput):
        build_metadata_store(uri)


@pytest.mark.parametrize("uri", ["ftp://x", "file://", "s3://", "s3:///prefix", "/tmp/a"])
def test_bad_artifact_uri(uri: str) -> None:
    with pytest.raises(InvalidInput):
        build_artifact_store(uri)
