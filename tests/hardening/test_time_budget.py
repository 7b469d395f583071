"""Time budget: AWS calls give up before API Gateway's 29 s integration limit.

Asserted on the clients the adapters actually build (the DynamoDB store's pynamodb connections,
the S3 artifact store's boto3 client, and those of an API app configured for AWS), not on
constants: connect and read timeouts, botocore's effective maximum number of attempts (read from
the retry handler registered on the client) and standard retry mode. The worst case of one call
is then ``attempts x (connect + read) + the longest backoff between the attempts``, the backoff
computed with botocore's own formula at its maximum (jitter 1.0, throttling scale).

Not in the figure: a service may ask for a longer wait with ``x-amz-retry-after`` (botocore then
waits up to 5 s more per retry), and ``read_timeout`` bounds each socket read, not a whole
streamed download. No request is sent: building a client makes none, and the endpoint points at
a closed port on 127.0.0.1 in case one did.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from copy import copy
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from functions.api.main import create_app
from functions.api.settings import ApiSettings
from tests.deploy.test_template import TEMPLATE, CloudFormationLoader
from tracking.artifacts.s3 import S3ArtifactStore
from tracking.backends import build_artifact_store, build_metadata_store
from tracking.stores.dynamodb import DynamoDBStore

API_GATEWAY_LIMIT_SECONDS = 29.0
MAX_CONNECT_SECONDS = 2.0
MAX_READ_SECONDS = 5.0
MAX_ATTEMPTS = 3


@pytest.fixture(autouse=True)
def _nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")


def _retry_handler(client: Any) -> Any:
    service = client.meta.service_model.service_id.hyphenize()
    emitter = client.meta.events._emitter
    return emitter._unique_id_handlers[f"retry-config-{service}"]["handler"].__self__


def effective_attempts(client: Any) -> int:
    """The attempt limit botocore's standard retry handler enforces on this client."""
    checker = _retry_handler(client)._retry_policy._retry_checker._max_attempts_checker
    return int(checker._max_attempts)


def worst_backoff(client: Any, attempts: int) -> float:
    """The longest total sleep between ``attempts`` attempts, by botocore's own formula."""
    backoff = copy(_retry_handler(client)._retry_policy._retry_backoff)
    backoff._random = lambda: 1.0  # the top of the jitter
    backoff._throttling_detector = SimpleNamespace(
        is_throttling_error_from_context=lambda context: True  # the larger (1 s) scale
    )
    return sum(
        float(backoff.delay_amount(SimpleNamespace(attempt_number=n, http_response=None)))
        for n in range(1, attempts)
    )


def budget(client: Any) -> dict[str, Any]:
    config = client.meta.config
    attempts = effective_attempts(client)
    backoff = worst_backoff(client, attempts)
    return {
        "service": client.meta.service_model.service_id.hyphenize(),
        "connect": config.connect_timeout,
        "read": config.read_timeout,
        "mode": config.retries.get("mode"),
        "attempts": attempts,
        "backoff": round(backoff, 3),
        "worst": round(attempts * (config.connect_timeout + config.read_timeout) + backoff, 3),
    }


def assert_within_budget(client: Any) -> dict[str, Any]:
    figures = budget(client)
    print(f"\n[time budget] {figures}")
    assert figures["mode"] == "standard", figures
    assert 0 < figures["connect"] <= MAX_CONNECT_SECONDS, figures
    assert 0 < figures["read"] <= MAX_READ_SECONDS, figures
    assert 1 <= figures["attempts"] <= MAX_ATTEMPTS, figures
    # One call's worst case fits the function's timeout, which fits the gateway's.
    assert figures["worst"] <= function_timeouts()["ApiFunction"] < API_GATEWAY_LIMIT_SECONDS
    return figures


def dynamodb_clients(store: DynamoDBStore) -> Iterator[Any]:
    """The botocore client of every pynamodb model class the store built."""
    for model in (store._models.TrackingItem, store._models.MetricPoint):
        yield model._get_connection().connection.client


def test_dynamodb_store_clients_are_bounded() -> None:
    store = build_metadata_store("dynamodb://budget")
    assert isinstance(store, DynamoDBStore)
    clients = list(dynamodb_clients(store))
    # Transactions and table creation use the tracking model's connection, checked above.
    assert store._connection().client is clients[0]
    for client in clients:
        figures = assert_within_budget(client)
        assert figures["service"] == "dynamodb"


def test_s3_artifact_store_client_is_bounded() -> None:
    artifacts = build_artifact_store("s3://budget-bucket/artifacts")
    assert isinstance(artifacts, S3ArtifactStore)
    figures = assert_within_budget(artifacts.client)
    assert figures["service"] == "s3"


def test_the_api_builds_bounded_clients() -> None:
    """The adapters an app configured for AWS uses (built lazily, so no request is made)."""
    settings = ApiSettings(
        TRACKING_URI="dynamodb://budget",
        ARTIFACT_URI="s3://budget-bucket/artifacts",
        LOAD_MODELS_ON_START=False,
        API_KEYS="[]",
    )
    registry = create_app(settings).state.registry
    assert isinstance(registry.store, DynamoDBStore)
    assert isinstance(registry.artifacts, S3ArtifactStore)
    for client in [*dynamodb_clients(registry.store), registry.artifacts.client]:
        assert_within_budget(client)


def test_the_budget_arithmetic_is_botocores() -> None:
    """The worst case of the defaults, worked by hand: 3 x (2 + 5) + (1 + 2) = 24 s."""
    figures = budget(build_artifact_store("s3://budget-bucket/artifacts").client)
    assert figures["attempts"] == 3
    assert figures["backoff"] == pytest.approx(1.0 + 2.0)
    assert figures["worst"] == pytest.approx(24.0)


def function_timeouts() -> dict[str, Any]:
    template = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)
    default = template.get("Globals", {}).get("Function", {}).get("Timeout")
    return {
        name: resource["Properties"].get("Timeout", default)
        for name, resource in template["Resources"].items()
        if resource["Type"] in {"AWS::Serverless::Function", "AWS::Lambda::Function"}
    }


def test_lambda_timeout_is_below_the_gateway_limit() -> None:
    functions = function_timeouts()
    assert functions, "no function in template.yaml"
    for name, timeout in functions.items():
        assert isinstance(timeout, int | float), (name, timeout)
        assert 0 < timeout < API_GATEWAY_LIMIT_SECONDS, (name, timeout)
