"""Stores as the previous release (9cdbb25) wrote them, for the upgrade tests.

The DynamoDB layout of that release, item for item: a run item without a summary, and one
item per param, tag, latest metric, dataset and artifact record in the run's partition. The
items are written with the table's own client exactly as that release's store wrote them, so
``tracking init`` is tested on what an existing deployment holds.
"""

from __future__ import annotations

from typing import Any

import boto3

_INVERSION = 10**16 - 1


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
