"""The stream function on moto: a real outbox item, read from the table's own stream, arrives
on EventBridge (a rule targets an SQS queue, which the test reads)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from functions.events import handler as events_handler
from tests.deploy.test_template import TEMPLATE, CloudFormationLoader
from tests.models_fixtures import save_model_files
from tracking import ExperimentLogger, ModelRegistry
from tracking.backends import build_stores
from tracking.config import load_config
from tracking.stores.dynamodb.schema import tracking_table_name

REGION = "us-east-1"
BUS = "registry-test-bus"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("TRACKING_URI", "dynamodb://evt")
    monkeypatch.setenv("ARTIFACT_URI", "s3://bucket-evt/artifacts")
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    events_handler._client.cache_clear()
    with mock_aws():
        yield
    events_handler._client.cache_clear()


@pytest.fixture
def queue(aws: None) -> str:
    """An SQS queue receiving every mlops.registry event put on the bus."""
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    url = sqs.create_queue(QueueName="registry-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all-registry-events",
        EventBusName=BUS,
        EventPattern=json.dumps({"source": [events_handler.SOURCE]}),
    )
    events.put_targets(
        Rule="all-registry-events", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}]
    )
    return url


def _stream_records() -> list[dict[str, Any]]:
    """An INSERT stream record per item the store wrote, as Lambda would receive them.

    moto does not serve DynamoDB Streams reads, so the records are built from the table's items
    (each item's full image is what a NEW_IMAGE record carries); the table's stream setting is
    checked on the real table.
    """
    client = boto3.client("dynamodb")
    name = tracking_table_name("evt")
    table = client.describe_table(TableName=name)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    items = client.scan(TableName=name, ConsistentRead=True)["Items"]
    return [
        {
            "eventID": str(number),
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "eventSourceARN": table["LatestStreamArn"],
            "dynamodb": {
                "Keys": {"pk": item["pk"], "sk": item["sk"]},
                "NewImage": item,
                "SequenceNumber": f"{number:021d}",
                "StreamViewType": "NEW_IMAGE",
            },
        }
        for number, item in enumerate(items, start=1)
    ]


def _received(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def _matches(pattern: Any, value: Any) -> bool:
    """The subset of EventBridge/Lambda filter syntax template.yaml uses: lists of literals."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and _matches(inner, value[key]) for key, inner in pattern.items()
        )
    return value in pattern


def _template_filter() -> dict[str, Any]:
    template = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)
    stream = template["Resources"]["EventsFunction"]["Properties"]["Events"]["Outbox"]
    (entry,) = stream["Properties"]["FilterCriteria"]["Filters"]
    pattern: dict[str, Any] = json.loads(entry["Pattern"])
    return pattern


def test_a_registry_change_reaches_eventbridge(queue: str, tmp_path: Path) -> None:
    metadata, artifacts = build_stores(load_config())
    metadata.initialize()
    artifacts.initialize()
    logger = ExperimentLogger(metadata_store=metadata, artifact_store=artifacts)
    files = save_model_files(tmp_path / "files")
    run = logger.log_experiment("churn", artifacts={"model": files["json"]})
    registry = ModelRegistry(store=metadata, artifact_store=artifacts, actor="ops")
    registry.register_model("churn", run.run_id, "model")
    registry.promote("churn", 1, to="production", reason="first")
    outbox = [r.event for r in metadata.list_events().items]  # type: ignore[attr-defined]
    records = _stream_records()
    # The mapping's filter keeps exactly the outbox inserts of the real stream.
    pattern = _template_filter()
    kept = [record for record in records if _matches(pattern, record)]
    assert len(records) > len(kept) == len(outbox) == 2
    found = [events_handler.outbox_event(record) for record in kept]
    assert sorted(found, key=str) == sorted(outbox, key=str)
    # The handler ignores what the filter would have dropped, too.
    answer = events_handler.handler({"Records": records})
    assert answer == {"batchItemFailures": []}
    received = _received(queue)
    assert sorted(m["detail"]["event_id"] for m in received) == sorted(e.event_id for e in outbox)
    by_type = {m["detail-type"]: m for m in received}
    assert set(by_type) == {"model_version.registered", "alias.moved"}
    moved = by_type["alias.moved"]
    assert moved["source"] == "mlops.registry"
    assert moved["detail"] == outbox[1].body()
    assert moved["detail"]["to"] == 1
    assert moved["detail"]["reason"] == "first"


def test_records_without_an_outbox_item_put_nothing(queue: str) -> None:
    records = [
        {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "1", "NewImage": {}}},
        {
            "eventName": "INSERT",
            "dynamodb": {"SequenceNumber": "2", "NewImage": {"sk": {"S": "MODEL"}}},
        },
    ]
    assert events_handler.handler({"Records": records}) == {"batchItemFailures": []}
    assert _received(queue) == []
