"""``tracking init`` turns the stream on for a tracking table created by an earlier release."""

from __future__ import annotations

import boto3
from moto import mock_aws

from tracking.stores.dynamodb import DynamoDBStore
from tracking.stores.dynamodb.schema import table_definitions, tracking_table_name


def test_initialize_enables_the_stream_on_an_older_table() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for definition in table_definitions("old"):
            older = {k: v for k, v in definition.items() if k != "StreamSpecification"}
            client.create_table(**older)
        name = tracking_table_name("old")
        assert "StreamSpecification" not in client.describe_table(TableName=name)["Table"]
        store = DynamoDBStore("old", region="us-east-1")
        store.initialize()
        stream = client.describe_table(TableName=name)["Table"]["StreamSpecification"]
        assert stream == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
        store.initialize()  # idempotent: nothing more to change
        assert client.describe_table(TableName=name)["Table"]["StreamSpecification"] == stream
        store.close()
