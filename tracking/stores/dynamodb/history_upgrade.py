"""Upgrade of a store written by the release that kept one item per metric point.

``upgrade_metric_history(store)`` (``DynamoDBStore.upgrade_metric_history``, run by
``tracking init``) is an admin operation, never a request path, so it may Scan:

1. Scan the metrics table page by page (1 MB). For the legacy items of a page (pk without the
   chunk suffix), write their points into the chunk items of the same ``(run, key)`` with
   ``SET p{o} = if_not_exists(p{o}, :v)``: a point already in a chunk was written by this
   release after the legacy one, so it is newer and is kept.
2. Only once those UpdateItems succeeded, delete that page's legacy items (BatchWriteItem).
3. After a complete scan, set ``history_format = CHUNKED_FORMAT`` on every run item still
   without it (a Scan of the tracking table for run items): reads of those runs then skip the
   legacy Query.

Crash-safety: a point is deleted only after its chunk write was confirmed, and re-converting a
point whose chunk write succeeded is a no-op (``if_not_exists``); reads merge both kinds by step,
so a half-converted history reads the same before, during and after. Running it again simply
starts over: converted items are gone, so it resumes where it stopped. A run is marked only
after a scan found none of its legacy points left.

Old-release writers still running during the upgrade may write legacy points after the scan
passed them; they stay readable until their run is marked, and a later ``tracking init``
converts them (re-run it once the last old writer is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracking.entities import Metric
from tracking.stores.dynamodb import schema
from tracking.stores.dynamodb.errors import _calling
from tracking.stores.dynamodb.history import (
    CHUNKED_FORMAT,
    chunk_pk_of_legacy,
    chunk_start,
    is_chunk_pk,
)
from tracking.stores.dynamodb.keys import _RUN_SK, _chunks
from tracking.stores.dynamodb.metrics import HISTORY_WRITE_CONCURRENCY
from tracking.stores.dynamodb.writes import BATCH_WRITE_LIMIT

if TYPE_CHECKING:
    from tracking.stores.dynamodb.metrics import DynamoDBMetrics

_ACTION = "upgrade metric history"


@dataclass
class UpgradeReport:
    """What one upgrade call did."""

    points_converted: int = 0
    legacy_items_deleted: int = 0
    runs_marked: int = 0


def _scan(client: Any, arguments: dict[str, Any]) -> Any:
    """Yield Scan pages, following ``LastEvaluatedKey`` (a cursor by key: deleting items
    already returned does not disturb it)."""
    while True:
        with _calling(_ACTION):
            page = client.scan(**arguments)
        yield page
        last = page.get("LastEvaluatedKey")
        if last is None:
            return
        arguments = {**arguments, "ExclusiveStartKey": last}


def upgrade_metric_history(
    store: DynamoDBMetrics, *, page_items: int | None = None
) -> UpgradeReport:
    """Convert every legacy per-point item into chunks, then mark the runs (module docstring).

    Args:
        store: the DynamoDB store to upgrade.
        page_items: Scan ``Limit`` (items per page); ``None`` for 1 MB pages. Tests use small
            pages to interrupt the upgrade between pages.

    Returns:
        The counts of converted points, deleted legacy items and marked runs.

    Raises:
        StoreUnavailable: DynamoDB failed; what was done is kept and a re-run continues.
    """
    report = UpgradeReport()
    client = store._metrics_client()
    table = schema.metrics_table_name(store.table_prefix)
    arguments: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    if page_items is not None:
        arguments["Limit"] = page_items
    for page in _scan(client, arguments):
        legacy = [item for item in page.get("Items", []) if not is_chunk_pk(item["pk"]["S"])]
        if legacy:
            _convert(store, legacy)
            report.points_converted += len(legacy)
            for part in _chunks(legacy, BATCH_WRITE_LIMIT):
                store._batch_write(
                    [{"DeleteRequest": {"Key": {"pk": i["pk"], "step": i["step"]}}} for i in part],
                    _ACTION,
                )
            report.legacy_items_deleted += len(legacy)
    report.runs_marked = _mark_runs(store)
    return report


def _convert(store: DynamoDBMetrics, items: list[Any]) -> None:
    """Write legacy items into their chunks, never replacing a chunk point; returns once every
    write succeeded."""
    grouped: dict[tuple[str, int], dict[int, Metric]] = {}
    for item in items:
        step = int(item["step"]["N"])
        start = chunk_start(step)
        # The key is only a label here: the chunk pk comes from the legacy pk itself.
        grouped.setdefault((chunk_pk_of_legacy(item["pk"]["S"]), start), {})[step - start] = (
            Metric.model_construct(
                key="",
                value=float(item["value"]["S"]),
                step=step,
                timestamp=int(item["timestamp"]["N"]),
            )
        )
    chunks = [(pk, start, by_offset) for (pk, start), by_offset in grouped.items()]
    store._concurrently(
        lambda chunk: store._write_chunk(*chunk, keep_existing=True),
        chunks,
        HISTORY_WRITE_CONCURRENCY,
    )


def _mark_runs(store: DynamoDBMetrics) -> int:
    """Set ``history_format`` on every run item that lacks it; returns how many."""
    client: Any = store._connection().client
    table = schema.tracking_table_name(store.table_prefix)
    arguments: dict[str, Any] = {
        "TableName": table,
        "ConsistentRead": True,
        "FilterExpression": "sk = :run AND attribute_not_exists(history_format)",
        "ExpressionAttributeValues": {":run": {"S": _RUN_SK}},
        "ProjectionExpression": "pk, sk",
    }
    marked = 0
    for page in _scan(client, arguments):
        for item in page.get("Items", []):
            with _calling(_ACTION):
                client.update_item(
                    TableName=table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET history_format = :format",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":format": {"N": str(CHUNKED_FORMAT)}},
                )
            marked += 1
    return marked
