"""The previous release's DynamoDB metric history, kept verbatim to write stores to upgrade.

``OldReleaseStore`` writes and reads metric history exactly as the release before chunks did:
one item per point (pk ``{run_id}#{key}``, sort key the step, ``value`` = repr(float)), 25 puts
per BatchWriteItem, and run items without ``history_format``. Everything else (runs, params,
latest metrics) is the current code, which that release shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracking.entities import Metric, RunRecord
from tracking.stores.dynamodb import DynamoDBStore
from tracking.stores.dynamodb.keys import _RUN_SK, _chunks, _metric_pk, _run_pk

BATCH_WRITE_LIMIT = 25


class OldReleaseStore(DynamoDBStore):
    """A ``DynamoDBStore`` that writes metric history as the previous release did."""

    def create_run(self, **kwargs: Any) -> RunRecord:
        run = super().create_run(**kwargs)
        model = self._models.TrackingItem
        model(_run_pk(run.run_id), _RUN_SK).update(actions=[model.history_format.remove()])
        return run

    def _write_metric_history(self, points: Sequence[Metric], run_id: str) -> None:
        # The previous release's writer, verbatim but for the unprocessed-items loop (moto
        # processes every item).
        model = self._models.MetricPoint
        items = [
            model(
                _metric_pk(run_id, point.key),
                point.step,
                value=repr(float(point.value)),
                timestamp=point.timestamp,
            ).serialize()
            for point in points
        ]
        connection = model._get_connection()
        for chunk in _chunks(items, BATCH_WRITE_LIMIT):
            connection.batch_write_item(put_items=list(chunk))


def legacy_items(store: DynamoDBStore) -> list[dict[str, Any]]:
    """Every per-point item of the metrics table (read by the test, with a Scan)."""
    client = store._models.MetricPoint._get_connection().connection.client
    table = f"{store.table_prefix}-metrics"
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        items.extend(item for item in page["Items"] if not item["pk"]["S"].endswith("#C"))
    return items
