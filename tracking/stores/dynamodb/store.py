"""``DynamoDBStore``: every port on two DynamoDB tables (``{prefix}-tracking``, ``-metrics``)."""

from __future__ import annotations

from tracking.stores.dynamodb.idempotency import DynamoDBIdempotency
from tracking.stores.dynamodb.metadata import DynamoDBMetadata
from tracking.stores.dynamodb.outbox import DynamoDBOutbox
from tracking.stores.dynamodb.registry import DynamoDBRegistry
from tracking.stores.dynamodb.schema import metrics_table_name, tracking_table_name
from tracking.stores.dynamodb.upgrade import DynamoDBUpgrade
from tracking.stores.ports.store import TrackingStore


class DynamoDBStore(
    DynamoDBMetadata,
    DynamoDBRegistry,
    DynamoDBOutbox,
    DynamoDBIdempotency,
    DynamoDBUpgrade,
    TrackingStore,
):
    """Tracking metadata, the model registry and idempotency records on DynamoDB.

    See ``DynamoDBBase`` for the region, endpoint and time budget, and ``schema`` for the
    tables and the item layout.
    """

    def locations(self) -> frozenset[str]:
        return frozenset(
            {tracking_table_name(self.table_prefix), metrics_table_name(self.table_prefix)}
        )

    def initialize(self) -> None:
        """Create missing tables (``DynamoDBBase.initialize``), then upgrade what an earlier
        release wrote (``upgrade.py``). Idempotent; resumable after a failure half way.

        Raises:
            StoreUnavailable: DynamoDB failed; running it again resumes.
        """
        super().initialize()
        self.upgrade_run_summaries()
        self.upgrade_metric_history()
