"""template.yaml's registry events: stream, function, least-privilege role, DLQ, filter."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.deploy.test_template import TEMPLATE, CloudFormationLoader
from tracking.stores.dynamodb.keys import _EVENT_SK
from tracking.stores.dynamodb.schema import TRACKING_STREAM, table_definitions


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)
    found: dict[str, Any] = loaded["Resources"]
    return found


def test_the_table_streams_what_the_code_declares(resources: dict[str, Any]) -> None:
    stream = resources["TrackingTable"]["Properties"]["StreamSpecification"]
    assert stream == {"StreamViewType": TRACKING_STREAM["StreamViewType"]}
    (tracking, metrics) = table_definitions("p")
    assert tracking["StreamSpecification"] == TRACKING_STREAM
    assert "StreamSpecification" not in metrics
    assert "StreamSpecification" not in resources["MetricsTable"]["Properties"]


def test_events_role_is_least_privilege(resources: dict[str, Any]) -> None:
    role = resources["EventsFunctionRole"]["Properties"]
    (policy,) = role["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert set(statements) == {
        "WriteOwnLogs",
        "ReadTrackingStream",
        "PutRegistryEvents",
        "DeadLetterFailedBatches",
    }
    assert statements["PutRegistryEvents"]["Action"] == "events:PutEvents"
    assert statements["PutRegistryEvents"]["Resource"] == {
        "Fn::GetAtt": ["RegistryEventBus", "Arn"]
    }
    stream = statements["ReadTrackingStream"]
    assert set(stream["Action"]) == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    assert stream["Resource"] == {"Fn::Sub": "${TrackingTable.Arn}/stream/*"}
    assert statements["DeadLetterFailedBatches"] == {
        "Sid": "DeadLetterFailedBatches",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
    }
    # No table reads or writes: the event is in the stream record.
    actions = [
        a
        for s in statements.values()
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not [
        a for a in actions if a in {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"}
    ]


def test_events_function_reads_the_stream_with_a_dlq_and_a_filter(
    resources: dict[str, Any],
) -> None:
    function = resources["EventsFunction"]["Properties"]
    assert function["Role"] == {"Fn::GetAtt": ["EventsFunctionRole", "Arn"]}
    assert "Policies" not in function
    assert function["ImageConfig"]["Command"][-1] == "functions.events.handler.handler"
    assert function["Environment"]["Variables"] == {"EVENT_BUS_NAME": {"Ref": "RegistryEventBus"}}
    source = function["Events"]["Outbox"]
    assert source["Type"] == "DynamoDB"
    props = source["Properties"]
    assert props["Stream"] == {"Fn::GetAtt": ["TrackingTable", "StreamArn"]}
    assert props["BisectBatchOnFunctionError"] is True
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
    }
    (entry,) = props["FilterCriteria"]["Filters"]
    assert json.loads(entry["Pattern"]) == {
        "eventName": ["INSERT"],
        "dynamodb": {"NewImage": {"sk": {"S": [_EVENT_SK]}}},
    }
    queue = resources["EventsDeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
