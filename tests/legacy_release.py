"""The previous release's DynamoDB layout, kept verbatim to write stores to upgrade.

``write_legacy_run`` writes one run item for item as that release did: a run item without a
summary, and one item per param, tag, latest metric, dataset and artifact record in the run's
partition (``tracking init`` must give it a summary). ``OldReleaseStore`` writes and reads
metric history exactly as the release before chunks did: one item per point (pk
``{run_id}#{key}``, sort key the step, ``value`` = repr(float)), 25 puts per BatchWriteItem, and
run items without ``history_format``; everything else is the current code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3

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


_INVERSION = 10**16 - 1  # the start-time inversion of gsi1sk


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def write_legacy_run(
    table: str,
    *,
    experiment_id: str,
    experiment_name: str,
    run_id: str,
    start_time: int,
    params: dict[str, str],
    tags: dict[str, str],
    metrics: dict[str, tuple[float, int, int]],
    datasets: dict[str, dict[str, Any]] | None = None,
    artifacts: dict[str, dict[str, Any]] | None = None,
) -> None:
    """One run in the previous release's layout (``metrics``: key -> (value, step, timestamp))."""
    client = boto3.client("dynamodb")
    pk = f"RUN#{run_id}"
    client.put_item(
        TableName=table,
        Item={
            "pk": _s(pk),
            "sk": _s("RUN"),
            "gsi1pk": _s(f"RUNS#{experiment_id}"),
            "gsi1sk": _s(f"{_INVERSION - start_time:016d}#{run_id}"),
            "run_id": _s(run_id),
            "experiment_id": _s(experiment_id),
            "experiment_name": _s(experiment_name),
            "status": _s("FINISHED"),
            "start_time": _n(start_time),
            "end_time": _n(start_time + 10),
            "change_id": _s("0" * 32),
        },
    )
    for key, value in params.items():
        client.put_item(
            TableName=table, Item={"pk": _s(pk), "sk": _s(f"PARAM#{key}"), "value": _s(value)}
        )
    for key, value in tags.items():
        client.put_item(
            TableName=table, Item={"pk": _s(pk), "sk": _s(f"TAG#{key}"), "value": _s(value)}
        )
    for key, (value, step, timestamp) in metrics.items():
        client.put_item(
            TableName=table,
            Item={
                "pk": _s(pk),
                "sk": _s(f"METRIC#{key}"),
                "value": _s(repr(float(value))),
                "step": _n(step),
                "timestamp": _n(timestamp),
            },
        )
    for name, record in (datasets or {}).items():
        item = {"pk": _s(pk), "sk": _s(f"DATASET#{name}")}
        item.update(
            uri=_s(record["uri"]),
            digest=_s(record["digest"]),
            digest_algorithm=_s(record["digest_algorithm"]),
            logged_at=_n(record["logged_at"]),
        )
        client.put_item(TableName=table, Item=item)
    for name, record in (artifacts or {}).items():
        item = {"pk": _s(pk), "sk": _s(f"ARTIFACT#{name}")}
        item.update(
            uri=_s(record["uri"]),
            sha256=_s(record["sha256"]),
            size=_n(record["size"]),
            created_at=_n(record["created_at"]),
        )
        client.put_item(TableName=table, Item=item)
