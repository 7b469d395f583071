"""Storage locations never reach a client: the redactor, the 5xx messages, the body checker."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.api.errors import public_message
from functions.api.redaction import REDACTED, Redactor
from tests.hygiene import Unhygienic, check_body, names_of
from tracking.errors import Conflict, IntegrityError, InvalidInput, StoreUnavailable


def test_aws_storage_names_are_the_tables_and_the_bucket() -> None:
    names = names_of("dynamodb://prod-ml", "s3://acme-models/ml/artifacts")
    assert set(names) == {"prod-ml-tracking", "prod-ml-metrics", "acme-models"}


def test_embedded_storage_names_are_the_database_and_the_folder(tmp_path: Path) -> None:
    names = names_of(f"sqlite:///{tmp_path}/t.db", f"file://{tmp_path}/artifacts")
    assert f"{tmp_path}/t.db" in names
    assert f"{tmp_path}/artifacts" in names
    assert list(names) == sorted(names, key=len, reverse=True)


@pytest.mark.parametrize(
    "message",
    [
        "DynamoDB put failed: Requested resource not found: Table: prod-ml-tracking not found",
        "cannot read artifact s3://acme-models/ml/artifacts/runs/r1/model/model.ubj: SlowDown",
        "User: arn:aws:sts::123456789012:assumed-role/api/x is not authorized",
        "invalid model name 'file:///etc/passwd': use 1-128 characters",
        "artifact URI is not in bucket 'acme-models'",
        "http://169.254.169.254/latest/meta-data/ refused",
    ],
)
def test_the_redactor_removes_every_location(message: str) -> None:
    redact = Redactor(names_of("dynamodb://prod-ml", "s3://acme-models/ml"))
    cleaned = redact(message)
    assert REDACTED in cleaned
    for secret in ("prod-ml-tracking", "acme-models", "arn:aws", "s3://", "file://", "169.254"):
        assert secret not in cleaned


def test_the_redactor_leaves_ordinary_messages_alone() -> None:
    message = "model 'churn' has no version 9"
    assert Redactor(names_of("dynamodb://p", "s3://b/x"))(message) == message


def test_server_side_failures_get_a_fixed_message_and_client_mistakes_their_own() -> None:
    assert public_message(StoreUnavailable("DynamoDB p-tracking throttled")) == (
        "a storage dependency is unavailable; try again later"
    )
    assert "p-tracking" not in public_message(StoreUnavailable("p-tracking"))
    assert public_message(IntegrityError("s3://b/k: sha mismatch")) == (
        "a stored artifact failed its integrity check"
    )
    assert public_message(InvalidInput("bad name")) == "bad name"
    assert public_message(Conflict("alias moved")) == "alias moved"


@pytest.mark.parametrize(
    "body",
    [
        'Traceback (most recent call last):\n  File "/app/x.py", line 3, in f',
        '{"message": "arn:aws:dynamodb:us-east-1:1:table/p-tracking"}',
        '{"artifact_uri": "s3://bucket/key"}',
        '{"message": "table p-tracking is gone"}',
    ],
)
def test_the_body_checker_catches_each_leak(body: str) -> None:
    with pytest.raises(Unhygienic):
        check_body(body, ("p-tracking",))


def test_the_body_checker_passes_a_clean_body() -> None:
    check_body(b'{"error": {"code": "not_found", "message": "no model named churn"}}', ("x-y",))


def test_every_test_client_response_is_checked() -> None:
    """The hook in tests/conftest.py is live: a leaking app fails the test that calls it."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    leaky = FastAPI()

    @leaky.get("/leak")
    def leak() -> dict[str, str]:
        return {"where": "s3://bucket/key"}

    with pytest.raises(Unhygienic):
        TestClient(leaky).get("/leak")
