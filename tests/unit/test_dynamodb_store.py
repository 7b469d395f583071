"""What the contract suite cannot see of the DynamoDB adapter: the requests it sends.

Every request goes through ``botocore.client.BaseClient._make_api_call``; the ``api`` fixture
wraps it to record operations and, where a test asks, to answer like a throttled DynamoDB.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.legacy_release import OldReleaseStore, legacy_items
from tracking.entities import (
    AliasChange,
    AliasState,
    Artifact,
    Dataset,
    Experiment,
    FeatureSpec,
    Flavor,
    HistoryAction,
    Metric,
    ModelVersion,
    RunStatus,
    Stage,
)
from tracking.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from tracking.registry import ModelRegistry
from tracking.stores._tokens import encode_token
from tracking.stores.dynamodb import DynamoDBStore
from tracking.stores.dynamodb import schema as dynamodb_schema
from tracking.stores.dynamodb.summary import SUMMARY_BUDGET_BYTES
from tracking.stores.dynamodb.writes import UNPROCESSED_RETRY_ATTEMPTS, item_size
from tracking.stores.ports.registry import AliasWrite

PREFIX = "unit"
Handler = Callable[[str, dict[str, Any]], dict[str, Any] | None]


@dataclass
class Api:
    """Records every DynamoDB request; ``handler`` may answer one instead of moto."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    handler: Handler | None = None
    send: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None

    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Api:
    recorder = Api()
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        recorder.calls.append((operation, params))
        recorder.send = lambda op, p: original(client, op, p)
        if recorder.handler is not None:
            answer = recorder.handler(operation, params)
            if answer is not None:
                return answer
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return recorder


@pytest.fixture
def store() -> Iterator[DynamoDBStore]:
    with mock_aws():
        metadata = DynamoDBStore(PREFIX)
        metadata.initialize()
        metadata._sleep = lambda _seconds: None
        try:
            yield metadata
        finally:
            metadata.close()


def _run(store: DynamoDBStore, run_id: str = "run1", start_time: int = 1000) -> Experiment:
    experiment = store.get_or_create_experiment("exp")
    store.create_run(
        experiment=experiment,
        run_id=run_id,
        run_name=None,
        tags={},
        parent_run_id=None,
        start_time=start_time,
    )
    return experiment


def _raw_items(table: str) -> list[dict[str, Any]]:
    """Every item of a table, read by the test (never by the store) to inspect the layout."""
    client = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


# -- construction, configuration ------------------------------------------------------------


def test_import_and_construction_create_no_client(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []
    original = BaseClient.__init__

    def counting(self: BaseClient, *args: Any, **kwargs: Any) -> None:
        created.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(BaseClient, "__init__", counting)
    monkeypatch.delitem(sys.modules, "tracking.stores.dynamodb")
    module = importlib.import_module("tracking.stores.dynamodb")
    module.DynamoDBStore("lazy")
    assert created == []


def test_invalid_prefix_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        DynamoDBStore("bad prefix/with space")


def test_region_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DynamoDBStore("p", region="eu-west-3").region == "eu-west-3"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert DynamoDBStore("p").region == "eu-central-1"
    monkeypatch.delenv("AWS_REGION")
    assert DynamoDBStore("p").region == "us-west-2"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    assert DynamoDBStore("p").region == "us-east-1"


def test_endpoint_from_environment_and_bounded_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    client = DynamoDBStore("p")._connection().client
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client.meta.config.connect_timeout == 2
    assert client.meta.config.read_timeout == 5
    assert client.meta.config.retries["total_max_attempts"] == 3

    explicit = DynamoDBStore("p", host="http://localhost:8000")._connection().client
    assert explicit.meta.endpoint_url == "http://localhost:8000"


# -- tables ---------------------------------------------------------------------------------


def test_table_definitions_are_create_table_parameters() -> None:
    tracking, metrics = dynamodb_schema.table_definitions("acme")
    assert tracking["TableName"] == "acme-tracking"
    assert metrics["TableName"] == "acme-metrics"
    for table in (tracking, metrics):
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        declared = {a["AttributeName"] for a in table["AttributeDefinitions"]}
        used = {k["AttributeName"] for k in table["KeySchema"]}
        for index in table.get("GlobalSecondaryIndexes", []):
            used |= {k["AttributeName"] for k in index["KeySchema"]}
        assert declared == used  # CreateTable refuses unused attribute definitions
    assert [index["IndexName"] for index in tracking["GlobalSecondaryIndexes"]] == ["gsi1"]


def test_initialize_creates_declared_tables_once(api: Api) -> None:
    with mock_aws():
        store = DynamoDBStore(PREFIX)
        store.initialize()
        store.initialize()
        assert api.operations().count("CreateTable") == 2
        client = boto3.client("dynamodb")
        for definition in dynamodb_schema.table_definitions(PREFIX):
            table = client.describe_table(TableName=definition["TableName"])["Table"]
            assert table["TableStatus"] == "ACTIVE"
            assert table["KeySchema"] == definition["KeySchema"]
            assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
            indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
            for index in definition.get("GlobalSecondaryIndexes", []):
                assert indexes[index["IndexName"]]["KeySchema"] == index["KeySchema"]
                assert indexes[index["IndexName"]]["Projection"] == {"ProjectionType": "ALL"}


def test_initialize_refuses_a_table_with_another_key_schema() -> None:
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=f"{PREFIX}-tracking",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        with pytest.raises(StoreUnavailable, match="key schema"):
            DynamoDBStore(PREFIX).initialize()


def test_requests_never_create_tables() -> None:
    with mock_aws():
        store = DynamoDBStore(PREFIX)
        with pytest.raises(StoreUnavailable, match="tracking init"):
            store.create_experiment("exp")
        assert boto3.client("dynamodb").list_tables()["TableNames"] == []


# -- request shapes ---------------------------------------------------------------------------


def test_no_scan_on_any_path(store: DynamoDBStore, api: Api) -> None:
    experiment = _run(store)
    store.create_run(
        experiment=experiment,
        run_id="child",
        run_name="c",
        tags={"t": "1"},
        parent_run_id="run1",
        start_time=2000,
    )
    store.log_batch(
        "run1",
        params={"p": "1"},
        tags={"t": "2"},
        metrics=[Metric(key="loss", value=1.0 / (i + 1), step=i, timestamp=i) for i in range(60)],
    )
    store.log_dataset(
        "run1", Dataset(name="d", uri="s3://b/d", digest="ab", digest_algorithm="md5", logged_at=1)
    )
    store.log_artifact(
        "run1", Artifact(name="model", uri="s3://b/m", sha256="ff", size=1, created_at=1)
    )
    store.set_run_status("run1", RunStatus.FINISHED, 5000)
    store.get_run("run1")
    list(store.iter_runs("exp"))
    store.log_batch(  # re-sent: the chunks exist, so UpdateItem
        "run1", metrics=[Metric(key="loss", value=0.5, step=i, timestamp=i) for i in range(60)]
    )
    list(store.iter_metric_history("run1", "loss"))
    store.get_metric_history(
        "run1", "loss", 10, store.get_metric_history("run1", "loss", 10).next_token
    )
    store.get_metric_histories(["run1", "child"], ["loss", "other"])
    store.list_experiments(1)
    assert api.calls, "the recorder saw nothing"
    assert "Scan" not in api.operations()
    assert {"Query", "PutItem", "UpdateItem", "TransactWriteItems"} <= set(api.operations())


def test_metric_points_go_in_one_put_per_new_chunk(store: DynamoDBStore, api: Api) -> None:
    _run(store)
    api.calls.clear()
    store.log_batch(
        "run1", metrics=[Metric(key="m", value=float(i), step=i, timestamp=i) for i in range(1000)]
    )
    metrics_writes = [
        (name, params)
        for name, params in api.calls
        if params.get("TableName") == f"{PREFIX}-metrics"
    ]
    assert [name for name, _ in metrics_writes] == ["PutItem"] * 10
    assert all(len(params["Item"]) == 2 + 100 for _, params in metrics_writes)
    assert len(list(store.iter_metric_history("run1", "m"))) == 1000


def test_points_of_an_existing_chunk_go_in_updates_of_25(store: DynamoDBStore, api: Api) -> None:
    _run(store)
    store.log_batch("run1", metrics=[Metric(key="m", value=0.0, step=0, timestamp=0)])
    api.calls.clear()
    store.log_batch(  # steps 1-99 of chunk 0 (exists), 100-149 of chunk 100 (new)
        "run1", metrics=[Metric(key="m", value=1.0, step=i, timestamp=i) for i in range(1, 150)]
    )
    writes = [
        (name, len(params.get("ExpressionAttributeValues", params.get("Item", {}))))
        for name, params in api.calls
        if params.get("TableName") == f"{PREFIX}-metrics"
    ]
    assert sorted(writes) == sorted(
        [("UpdateItem", 25)] * 3 + [("UpdateItem", 24)] + [("PutItem", 52)]
    )
    assert [p.step for p in store.iter_metric_history("run1", "m")] == list(range(150))


def test_repeated_point_in_one_batch_is_written_once(store: DynamoDBStore) -> None:
    _run(store)
    store.log_batch(
        "run1",
        metrics=[
            Metric(key="m", value=1.0, step=3, timestamp=1),
            Metric(key="m", value=2.0, step=3, timestamp=2),
        ],
    )
    history = store.get_metric_history("run1", "m").items
    assert [(p.step, p.value) for p in history] == [(3, 2.0)]
    assert store.get_run("run1").metrics["m"].value == 2.0


def _legacy_run(store: DynamoDBStore, points: int) -> None:
    """A run with ``points`` points of "m" written by the previous release."""
    old = OldReleaseStore(PREFIX)
    old.create_run(
        experiment=store.get_or_create_experiment("exp"), run_id="run1", run_name=None,
        tags={}, parent_run_id=None, start_time=1000,
    )  # fmt: skip
    old.log_batch(
        "run1",
        metrics=[Metric(key="m", value=float(i), step=i, timestamp=i) for i in range(points)],
    )


def test_unprocessed_items_are_resent_with_backoff(store: DynamoDBStore, api: Api) -> None:
    # BatchWriteItem is what the upgrade deletes converted legacy items with.
    _legacy_run(store, 25)
    throttled = {"left": 3}
    table = f"{PREFIX}-metrics"

    def half_processed(operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if operation != "BatchWriteItem" or throttled["left"] == 0:
            return None
        throttled["left"] -= 1
        requests = params["RequestItems"][table]
        keep, rest = requests[: len(requests) // 2], requests[len(requests) // 2 :]
        assert api.send is not None
        api.send(operation, {**params, "RequestItems": {table: keep}})
        return {"UnprocessedItems": {table: rest}}

    api.handler = half_processed
    sleeps: list[float] = []
    store._sleep = sleeps.append
    store.upgrade_metric_history()
    assert [p.step for p in store.iter_metric_history("run1", "m")] == list(range(25))
    assert legacy_items(store) == []
    assert len(sleeps) == 3
    # Equal jitter around an exponential curve: each wait lies in [d/2, d], d doubling.
    for attempt, slept in enumerate(sleeps):
        ceiling = 0.05 * 2**attempt
        assert ceiling / 2 <= slept <= ceiling


def test_unprocessed_items_never_dropped_silently(store: DynamoDBStore, api: Api) -> None:
    _legacy_run(store, 1)
    table = f"{PREFIX}-metrics"

    def nothing_processed(operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if operation == "BatchWriteItem":
            return {"UnprocessedItems": {table: params["RequestItems"][table]}}
        return None

    api.handler = nothing_processed
    sleeps: list[float] = []
    store._sleep = sleeps.append
    with pytest.raises(StoreUnavailable, match="unprocessed") as raised:
        store.upgrade_metric_history()
    assert len(sleeps) == UNPROCESSED_RETRY_ATTEMPTS
    assert "Traceback" not in str(raised.value)
    api.handler = None
    assert [p.step for p in store.iter_metric_history("run1", "m")] == [0]  # converted, kept


def test_items_stay_small(store: DynamoDBStore) -> None:
    """Only the run item grows, and only up to its summary's budget; then it overflows."""
    _run(store)
    for start in range(0, 500, 100):
        store.log_batch("run1", params={f"p{i:03d}": "x" * 200 for i in range(start, start + 100)})
    for key in ("a", "b", "c"):
        store.log_batch(
            "run1",
            metrics=[Metric(key=key, value=0.5, step=i, timestamp=i) for i in range(1000)],
        )
    tracking_items = {
        (item["pk"]["S"], item["sk"]["S"]): item_size(item)
        for item in _raw_items(f"{PREFIX}-tracking")
    }
    run_item = tracking_items.pop(("RUN#run1", "RUN"))
    assert run_item <= SUMMARY_BUDGET_BYTES + 1024
    assert max(tracking_items.values()) < 2_000
    # A chunk holds 100 steps; even of the longest values it stays far below 400 KB.
    assert max(item_size(item) for item in _raw_items(f"{PREFIX}-metrics")) < 4_000
    store.log_batch(
        "run1",
        metrics=[
            Metric(key="w", value=-2.2250738585072014e-308, step=i, timestamp=10**15 + i)
            for i in range(100)
        ],
    )
    assert max(item_size(item) for item in _raw_items(f"{PREFIX}-metrics")) < 5_000
    run = store.get_run("run1")
    assert len(run.params) == 500  # 100 KB of params: past the budget, read from the partition
    assert set(run.metrics) == {"a", "b", "c", "w"}
    assert run.metrics["a"].step == 999
    (listed,) = store.list_runs("exp").items
    assert listed == run


# -- params and conflicts -----------------------------------------------------------------------


def test_conflict_in_a_large_batch_writes_nothing(store: DynamoDBStore) -> None:
    _run(store)
    store.log_param("run1", "p050", "old")
    params = {f"p{i:03d}": "v" for i in range(100)}
    tags = {f"t{i:03d}": "x" for i in range(100)}  # with the params, three transactions' worth
    with pytest.raises(Conflict, match="p050"):
        store.log_batch(
            "run1",
            params=params,
            tags=tags,
            metrics=[Metric(key="m", value=1.0, step=0, timestamp=0)],
        )
    run = store.get_run("run1")
    assert run.params == {"p050": "old"}
    assert run.tags == {}
    assert run.metrics == {}
    assert store.get_metric_history("run1", "m").items == []


def test_large_batch_with_same_values_is_a_no_op_rewrite(store: DynamoDBStore) -> None:
    _run(store)
    params = {f"p{i:03d}": str(i) for i in range(100)}
    tags = {f"t{i:03d}": "x" for i in range(100)}
    store.log_batch("run1", params=params, tags=tags)
    store.log_batch("run1", params=params)
    run = store.get_run("run1")
    assert run.params == params
    assert run.tags == tags


def test_older_point_does_not_replace_latest(store: DynamoDBStore) -> None:
    _run(store)
    store.log_metric("run1", Metric(key="m", value=0.1, step=10, timestamp=5))
    store.log_metric("run1", Metric(key="m", value=0.9, step=9, timestamp=99))
    store.log_metric("run1", Metric(key="m", value=0.8, step=10, timestamp=4))
    assert store.get_run("run1").metrics["m"] == Metric(key="m", value=0.1, step=10, timestamp=5)


def test_metric_values_round_trip_exactly(store: DynamoDBStore) -> None:
    _run(store)
    values = [0.1 + 0.2, 1e-300, 1.7976931348623157e308, -0.0, 123456789.123456789]
    store.log_batch(
        "run1",
        metrics=[Metric(key="m", value=v, step=i, timestamp=0) for i, v in enumerate(values)],
    )
    assert [p.value for p in store.iter_metric_history("run1", "m")] == values


# -- pagination ---------------------------------------------------------------------------------


def test_exact_pages_end_with_no_token(store: DynamoDBStore) -> None:
    for name in ("a", "b", "c", "d"):
        store.create_experiment(name)
    first = store.list_experiments(2)
    second = store.list_experiments(2, first.next_token)
    assert [e.name for e in first.items + second.items] == ["a", "b", "c", "d"]
    assert second.next_token is None


def test_runs_with_equal_start_time_page_by_run_id(store: DynamoDBStore) -> None:
    experiment = _run(store, "r0", start_time=500)
    for run_id in ("r3", "r1", "r2"):
        store.create_run(
            experiment=experiment,
            run_id=run_id,
            run_name=None,
            tags={},
            parent_run_id=None,
            start_time=1000,
        )
    seen: list[str] = []
    token = None
    while True:
        page = store.list_runs("exp", 1, token)
        seen += [run.run_id for run in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == ["r1", "r2", "r3", "r0"]


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "e30",  # {}
        encode_token({"experiment": 5}),
        encode_token({"order": "x", "run": "y"}),
        encode_token({"step": "3"}),
        encode_token({"step": -1}),
    ],
)
def test_foreign_tokens_are_invalid_input(store: DynamoDBStore, token: str) -> None:
    _run(store)
    for call in (
        lambda: store.list_experiments(10, token),
        lambda: store.list_runs("exp", 10, token),
        lambda: store.get_metric_history("run1", "m", 10, token),
    ):
        with pytest.raises(InvalidInput):
            call()


# -- error translation --------------------------------------------------------------------------


def _client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "slow down"}}, operation)


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"]
)
def test_backend_errors_are_store_unavailable(store: DynamoDBStore, api: Api, code: str) -> None:
    _run(store)

    def failing(operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        raise _client_error(code, operation)

    api.handler = failing
    for call in (
        lambda: store.get_run("run1"),
        lambda: store.get_experiment("exp"),
        lambda: store.log_param("run1", "p", "v"),
        lambda: store.log_metric("run1", Metric(key="m", value=1.0, step=0, timestamp=0)),
        lambda: store.list_runs("exp"),
        lambda: store.set_run_status("run1", RunStatus.FAILED, 1),
    ):
        with pytest.raises(StoreUnavailable) as raised:
            call()
        assert "Traceback" not in raised.value.message
        assert raised.value.__cause__ is not None


def test_transaction_conflict_is_conflict(store: DynamoDBStore, api: Api) -> None:
    _run(store)

    def racing(operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if operation != "TransactWriteItems":
            return None
        error = _client_error("TransactionCanceledException", operation)
        error.response["CancellationReasons"] = [
            {"Code": "None"},
            {"Code": "TransactionConflict", "Message": "conflict"},
        ]
        raise error

    api.handler = racing
    with pytest.raises(Conflict, match="concurrent"):
        store.log_param("run1", "p", "v")


def test_unreachable_endpoint_is_store_unavailable_quickly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = DynamoDBStore(
        PREFIX,
        host=f"http://127.0.0.1:{port}",
        connect_timeout_seconds=0.5,
        read_timeout_seconds=0.5,
        max_retry_attempts=0,
    )
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1") as raised:
        store.get_experiment("exp")
    assert "Traceback" not in raised.value.message
    with pytest.raises(StoreUnavailable):
        store.initialize()


def test_missing_run_is_not_found_everywhere(store: DynamoDBStore) -> None:
    _run(store)
    with pytest.raises(NotFound):
        store.set_run_status("nope", RunStatus.FINISHED, 1)
    with pytest.raises(NotFound):
        store.log_batch("nope")
    with pytest.raises(NotFound):
        store.get_metric_history("nope", "m")


# -- model registry -------------------------------------------------------------------------------


def _register(store: DynamoDBStore, name: str = "m", count: int = 1) -> None:
    try:
        first = store.get_model(name).latest_version
    except NotFound:
        first = 0
    for latest in range(first, first + count):
        number = latest + 1
        version = ModelVersion(
            name=name,
            version=number,
            run_id="run1",
            experiment_name="exp",
            artifact_name="model",
            artifact_uri=f"s3://b/{name}/{number}",
            sha256="ff" * 32,
            size=10,
            flavor=Flavor.XGBOOST,
            signature=[FeatureSpec(name="x", type="float")],
            metadata={"auc": 0.9},
            created_at=1000 + number,
            actor="unit",
        )
        change = AliasChange(
            name=name,
            action=HistoryAction.REGISTER,
            to_version=number,
            actor="unit",
            timestamp=1000 + number,
            change_id=uuid.uuid4().hex,
        )
        store.create_model_version(version, expected_latest=latest, change=change)


def _registry(store: DynamoDBStore) -> ModelRegistry:
    # promote / rollback / archive never touch artifacts.
    return ModelRegistry(store=store, artifact_store=cast(Any, object()), actor="unit")


def _change(name: str = "m", timestamp: int = 5000) -> AliasChange:
    return AliasChange(
        name=name,
        action=HistoryAction.PROMOTE,
        alias="production",
        to_version=1,
        actor="unit",
        timestamp=timestamp,
        change_id=uuid.uuid4().hex,
    )


def _transact_items(api: Api) -> list[list[dict[str, Any]]]:
    return [params["TransactItems"] for name, params in api.calls if name == "TransactWriteItems"]


def test_register_and_promote_are_one_transaction_each(store: DynamoDBStore, api: Api) -> None:
    _register(store, count=2)
    registry = _registry(store)
    registry.promote("m", 1, to="production")
    api.calls.clear()
    _register(store)
    assert len(_transact_items(api)) == 1
    api.calls.clear()
    registry.promote("m", 2, to="production")
    (items,) = _transact_items(api)
    # model updated_at, production alias, v2 -> production, v1 -> archived, history entry, and
    # the outbox event in the same transaction
    kinds = sorted(next(iter(item)) for item in items)
    assert kinds == ["Put", "Put", "Put", "Update", "Update", "Update"]
    (outbox,) = [
        i["Put"]["Item"]
        for i in items
        if i.get("Put", {}).get("Item", {}).get("sk") == {"S": "EVENT"}
    ]
    assert outbox["status"] == {"S": "pending"}
    assert "Scan" not in api.operations()
    assert {op for op, _ in api.calls} <= {"GetItem", "Query", "TransactWriteItems"}


def test_no_scan_on_any_registry_path(store: DynamoDBStore, api: Api) -> None:
    _register(store, count=3)
    registry = _registry(store)
    registry.promote("m", 1, to="production")
    registry.promote("m", 2, to="production")
    registry.promote("m", 3, to="staging")
    registry.rollback("m")
    registry.archive("m", 3)
    registry.update_model("m", description="d", tags={"a": "1"})
    registry.update_version("m", 1, tags={"b": "2"})
    registry.get_version_by_alias("m", "production")
    registry.list_models()
    list(store.iter_versions("m"))
    registry.history("m")
    assert "Scan" not in api.operations()


def test_many_versions_keep_items_small_and_page_newest_first(
    store: DynamoDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto backs up every table with deepcopy before each transaction, which makes 1,000
    # registrations quadratic; none of these transactions is cancelled, so skip the backup.
    import moto.dynamodb.models as moto_models

    monkeypatch.setattr(moto_models, "copy", SimpleNamespace(deepcopy=lambda value: value))
    _register(store, count=1000)
    registry = _registry(store)
    for number in (998, 999, 1000):
        registry.promote("m", number, to="production")
    biggest = max(len(json.dumps(item)) for item in _raw_items(f"{PREFIX}-tracking"))
    assert biggest < 2_000
    model = store.get_model("m")
    assert (model.latest_version, model.aliases) == (1000, {"production": 1000})
    first = store.list_versions("m", 100)
    assert [v.version for v in first.items] == list(range(1000, 900, -1))
    assert [v.version for v in store.iter_versions("m")] == list(range(1000, 0, -1))
    assert store.get_alias("m", "production").previous == [998, 999]  # type: ignore[union-attr]
    assert len(list(store.iter_history("m"))) == 1003


def test_versions_round_trip(store: DynamoDBStore) -> None:
    _register(store)
    version = store.get_version("m", 1)
    assert version.signature == [FeatureSpec(name="x", type="float")]
    assert version.metadata == {"auc": 0.9}
    assert version.stage is Stage.NONE
    updated = store.update_version("m", 1, description="", tags={"a.b": "1", "c": "2"})
    assert (updated.description, updated.tags) == ("", {"a.b": "1", "c": "2"})
    assert store.update_version("m", 1, tags={"c": "3"}).tags == {"a.b": "1", "c": "3"}
    assert store.get_version("m", 1) == store.update_version("m", 1)


def test_stale_revision_writes_nothing(store: DynamoDBStore) -> None:
    _register(store, count=2)
    registry = _registry(store)
    registry.promote("m", 1, to="production")
    before = (list(store.iter_versions("m")), list(store.iter_history("m")), store.get_model("m"))
    state = AliasState(alias="production", version=2, previous=[1], revision="new")
    for expected in ("stale", None):
        with pytest.raises(Conflict, match="production"):
            store.apply_change(
                "m",
                alias_writes=[AliasWrite("production", expected, state)],
                stage_updates={2: Stage.PRODUCTION, 1: Stage.ARCHIVED},
                change=_change(),
            )
    with pytest.raises(Conflict):
        store.apply_change(
            "m",
            alias_writes=[AliasWrite("staging", "stale", check_only=True)],
            stage_updates={2: Stage.STAGING},
            change=_change(),
        )
    after = (list(store.iter_versions("m")), list(store.iter_history("m")), store.get_model("m"))
    assert after == before


def test_missing_version_in_a_change_is_not_found_and_writes_nothing(
    store: DynamoDBStore,
) -> None:
    _register(store)
    state = AliasState(alias="production", version=1, previous=[], revision="r")
    with pytest.raises(NotFound, match="version 7"):
        store.apply_change(
            "m",
            alias_writes=[AliasWrite("production", None, state)],
            stage_updates={1: Stage.PRODUCTION, 7: Stage.ARCHIVED},
            change=_change(),
        )
    assert store.get_alias("m", "production") is None
    assert store.get_version("m", 1).stage is Stage.NONE


def test_history_in_write_order_within_one_millisecond(store: DynamoDBStore) -> None:
    _register(store)
    ids = []
    for _ in range(5):
        change = _change(timestamp=7000)
        ids.append(change.change_id)
        store.apply_change("m", alias_writes=[], stage_updates={}, change=change)
    history = list(store.iter_history("m"))
    assert [h.change_id for h in history[1:]] == ids
    assert [h.change_id for h in store.list_history("m", 2).items] == [
        history[0].change_id,
        ids[0],
    ]


def test_lost_registration_race_is_conflict(store: DynamoDBStore) -> None:
    _register(store, count=2)
    version = store.get_version("m", 2)
    change = _change()
    for expected in (0, 1):
        with pytest.raises(Conflict):
            store.create_model_version(
                version.model_copy(update={"version": expected + 1}),
                expected_latest=expected,
                change=change,
            )
    assert store.get_model("m").latest_version == 2
    assert len(list(store.iter_history("m"))) == 2


def test_registry_transaction_conflict_is_conflict(store: DynamoDBStore, api: Api) -> None:
    _register(store)

    def racing(operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if operation != "TransactWriteItems":
            return None
        error = _client_error("TransactionCanceledException", operation)
        error.response["CancellationReasons"] = [
            {"Code": "TransactionConflict", "Message": "conflict"}
        ] + [{"Code": "None"}] * (len(params["TransactItems"]) - 1)
        raise error

    api.handler = racing
    with pytest.raises(Conflict, match="concurrent"):
        _registry(store).promote("m", 1, to="production")


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        "e30",  # {}
        encode_token({"model": 5}),
        encode_token({"before": "3"}),
        encode_token({"before": 0}),
        encode_token({"after": "V#0000000001"}),
    ],
)
def test_foreign_registry_tokens_are_invalid_input(store: DynamoDBStore, token: str) -> None:
    _register(store)
    for call in (
        lambda: store.list_models(10, token),
        lambda: store.list_versions("m", 10, token),
        lambda: store.list_history("m", 10, token),
    ):
        with pytest.raises(InvalidInput):
            call()


def test_missing_model_is_not_found_everywhere(store: DynamoDBStore) -> None:
    _register(store)
    for call in (
        lambda: store.get_model("nope"),
        lambda: store.get_version("nope", 1),
        lambda: store.get_version("m", 2),
        lambda: store.list_versions("nope"),
        lambda: store.get_alias("nope", "production"),
        lambda: store.list_history("nope"),
        lambda: store.update_model("nope", description="x"),
        lambda: store.update_version("nope", 1, description="x"),
        lambda: store.update_version("m", 2, description="x"),
        lambda: store.apply_change(
            "nope", alias_writes=[], stage_updates={}, change=_change("nope")
        ),
    ):
        with pytest.raises(NotFound):
            call()
    assert store.list_models().items[0].name == "m"
    assert [model.name for model in store.list_models().items] == ["m"]


def test_latest_metrics_of_a_training_loop_take_one_update_per_step(
    store: DynamoDBStore, api: Api
) -> None:
    """Five keys: all new (one update that adds them), then all known and older (one update)."""
    _run(store)
    keys = ("a", "b", "c", "d", "e")

    def run_item_updates(number: int) -> int:
        api.calls.clear()
        points = [Metric(key=k, value=number + 0.5, step=number, timestamp=number) for k in keys]
        store.log_batch("run1", metrics=points)
        return sum(
            1
            for name, params in api.calls
            if name == "UpdateItem" and params["Key"].get("sk", {}).get("S") == "RUN"
        )

    assert run_item_updates(0) == 2  # "all known" refused, then "all new" written
    assert run_item_updates(1) == 1
    assert run_item_updates(2) == 1
    run = store.get_run("run1")
    assert {key: metric.step for key, metric in run.metrics.items()} == dict.fromkeys(keys, 2)
    # An older point for one key and a new key: key by key, and the older one is kept out.
    store.log_batch(
        "run1",
        metrics=[
            Metric(key="a", value=9.0, step=0, timestamp=99),
            Metric(key="f", value=1.0, step=0, timestamp=0),
        ],
    )
    run = store.get_run("run1")
    assert run.metrics["a"].value == 2.5
    assert run.metrics["f"].value == 1.0
