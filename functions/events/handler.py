"""DynamoDB Streams -> EventBridge: each outbox insert becomes one registry event on the bus.

The event source mapping (template.yaml, ``EventsFunction``) filters the stream to inserts of
outbox items (``sk`` = ``EVENT``), so this function sees nothing else; it still checks, because
a filter is configuration and the handler is code. Each event is put with ``Source``
``mlops.registry``, ``DetailType`` the event type (``alias.moved``, ...) and ``Detail`` the same
JSON body a webhook receives.

Failures: entries EventBridge refuses are reported as batch item failures (the stream resumes
from the first of them); any other error fails the batch, which the mapping bisects and, after
its retries, sends to the dead-letter queue. Delivery is at-least-once: consumers dedupe by
``detail.event_id``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from tracking.entities import RegistryEvent

log = logging.getLogger(__name__)

SOURCE = "mlops.registry"
#: The sort key of outbox items (tracking/stores/dynamodb/keys.py ``_EVENT_SK``).
OUTBOX_SK = "EVENT"
#: PutEvents takes at most 10 entries per call.
PUT_EVENTS_LIMIT = 10


@functools.cache
def _client() -> Any:
    import boto3

    return boto3.client("events")


def _bus() -> str:
    return os.environ.get("EVENT_BUS_NAME", "default")


def outbox_event(record: dict[str, Any]) -> RegistryEvent | None:
    """The registry event in one stream record, or ``None`` when it carries none."""
    if record.get("eventName") != "INSERT":
        return None
    image = record.get("dynamodb", {}).get("NewImage", {})
    if image.get("sk", {}).get("S") != OUTBOX_SK or "event" not in image:
        return None
    return RegistryEvent.model_validate_json(image["event"]["S"])


def _entry(event: RegistryEvent) -> dict[str, Any]:
    return {
        "Time": datetime.fromtimestamp(event.time / 1000, tz=UTC),
        "Source": SOURCE,
        "DetailType": event.type.value,
        "Detail": json.dumps(event.body(), separators=(",", ":")),
        "EventBusName": _bus(),
    }


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Put the batch's outbox events on the bus; report the records EventBridge refused."""
    pending: list[tuple[str, RegistryEvent]] = []
    for record in event.get("Records", []):
        found = outbox_event(record)
        if found is not None:
            pending.append((record["dynamodb"]["SequenceNumber"], found))
    failures: list[dict[str, str]] = []
    for start in range(0, len(pending), PUT_EVENTS_LIMIT):
        chunk = pending[start : start + PUT_EVENTS_LIMIT]
        answer = _client().put_events(Entries=[_entry(item) for _, item in chunk])
        for (sequence, item), result in zip(chunk, answer.get("Entries", []), strict=False):
            if result.get("ErrorCode"):
                log.warning(
                    "EventBridge refused event %s: %s", item.event_id, result.get("ErrorCode")
                )
                failures.append({"itemIdentifier": sequence})
    log.info("put %d registry events, %d refused", len(pending) - len(failures), len(failures))
    return {"batchItemFailures": failures}
