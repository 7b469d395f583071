"""``DynamoDBStore``: every port on two DynamoDB tables (``{prefix}-tracking``, ``-metrics``)."""

from __future__ import annotations

from tracking.stores.dynamodb.idempotency import DynamoDBIdempotency
from tracking.stores.dynamodb.metadata import DynamoDBMetadata
from tracking.stores.dynamodb.registry import DynamoDBRegistry
from tracking.stores.ports.store import TrackingStore


class DynamoDBStore(DynamoDBMetadata, DynamoDBRegistry, DynamoDBIdempotency, TrackingStore):
    """Tracking metadata, the model registry and idempotency records on DynamoDB.

    See ``DynamoDBBase`` for the region, endpoint and time budget, and ``schema`` for the
    tables and the item layout.
    """
