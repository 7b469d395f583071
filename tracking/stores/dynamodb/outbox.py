"""The event outbox on DynamoDB (the ``OutboxStore`` port).

One item per event, ``EVENT#{event_id}`` / ``EVENT``, put by the registry's TransactWriteItems
together with the change (``outbox_item``). gsi1 lists them per status (``EVENTS#{status}``,
by time), so the dispatcher's due listing and ``tracking events list --status dead`` are one
Query each, never a Scan. The table's stream carries the inserts to EventBridge
(``functions/events/handler.py``).
"""

from __future__ import annotations

import json
from typing import Any

from pynamodb.exceptions import DoesNotExist

from tracking.entities import EventStatus, OutboxRecord, Page, RegistryEvent
from tracking.errors import InvalidInput, NotFound
from tracking.stores._tokens import check_page_size, decode_token, encode_token
from tracking.stores.dynamodb import schema
from tracking.stores.dynamodb.base import DynamoDBBase
from tracking.stores.dynamodb.errors import _calling, conditional_write
from tracking.stores.dynamodb.keys import _EVENT_SK, _event_pk, _events_gsi_pk, _events_gsi_sk
from tracking.stores.dynamodb.queries import query_page
from tracking.stores.ports.metadata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from tracking.stores.ports.outbox import MAX_DUE, OutboxStore

#: Characters kept of a delivery error (the item stays small whatever a receiver answers).
MAX_ERROR = 500


def outbox_item(model: Any, record: OutboxRecord) -> Any:
    """The item of a new outbox event (for a transaction's put)."""
    event = record.event
    return model(
        _event_pk(event.event_id),
        _EVENT_SK,
        gsi1pk=_events_gsi_pk(record.status.value),
        gsi1sk=_events_gsi_sk(event.time, event.event_id),
        name=event.model,
        event_type=event.type.value,
        event_json=event.model_dump_json(),
        status=record.status.value,
        attempts=record.attempts,
        next_attempt_at=record.next_attempt_at,
        delivered_json=json.dumps(record.delivered_to),
    )


def _record_from(item: Any) -> OutboxRecord:
    return OutboxRecord(
        event=RegistryEvent.model_validate_json(item.event_json),
        status=EventStatus(item.status),
        attempts=int(item.attempts or 0),
        last_error=item.last_error,
        next_attempt_at=int(item.next_attempt_at or 0),
        delivered_to=json.loads(item.delivered_json or "[]"),
    )


class DynamoDBOutbox(DynamoDBBase, OutboxStore):
    """Outbox reads and delivery updates on the tracking table."""

    def list_events(
        self,
        status: EventStatus | None = None,
        max_results: int = DEFAULT_PAGE_SIZE,
        page_token: str | None = None,
    ) -> Page[OutboxRecord]:
        """Events oldest first: one gsi1 Query per status asked for, merged by time.

        Without ``status`` the three status partitions are read from the token's position and
        merged; an event that changes status between two pages may show on both or neither.

        Raises:
            InvalidInput: bad ``max_results`` or ``page_token``.
        """
        limit = check_page_size(max_results, MAX_PAGE_SIZE)
        after: str | None = None
        if page_token is not None:
            after = decode_token(page_token, ("after",))["after"]
            if not isinstance(after, str) or not after:
                raise InvalidInput("invalid page token")
        statuses = [EventStatus(status)] if status is not None else list(EventStatus)
        model = self._models.TrackingItem
        items: list[Any] = []
        for each in statuses:
            items += query_page(
                model,
                _events_gsi_pk(each.value),
                None if after is None else model.gsi1sk > after,
                action="list events",
                limit=limit,
                index_name=schema.GSI1_NAME,
            )
        items.sort(key=lambda item: str(item.gsi1sk))
        page = items[:limit]
        token = encode_token({"after": page[-1].gsi1sk}) if len(items) > limit else None
        return Page[OutboxRecord](items=[_record_from(item) for item in page], next_token=token)

    def get_event(self, event_id: str) -> OutboxRecord:
        with _calling("get event"):
            try:
                item = self._models.TrackingItem.get(
                    _event_pk(event_id), _EVENT_SK, consistent_read=True
                )
            except DoesNotExist:
                raise NotFound(f"event {event_id!r} not found") from None
        return _record_from(item)

    def due_events(self, now: int, limit: int = MAX_DUE) -> list[OutboxRecord]:
        """Pending events due by ``now``: one gsi1 Query (eventually consistent) with a filter."""
        model = self._models.TrackingItem
        wanted = max(1, min(limit, MAX_DUE))
        with _calling("list due events"):
            items = list(
                model.query(
                    _events_gsi_pk(EventStatus.PENDING.value),
                    filter_condition=model.next_attempt_at <= now,
                    index_name=schema.GSI1_NAME,
                    limit=wanted,
                )
            )
        return [_record_from(item) for item in items[:wanted]]

    def update_delivery(self, record: OutboxRecord, *, expected_attempts: int) -> bool:
        """One UpdateItem conditioned on the stored attempt count (moves the item's gsi1 key
        to its new status).

        Raises:
            NotFound: no such event.
        """
        model = self._models.TrackingItem
        event = record.event
        item = model(_event_pk(event.event_id), _EVENT_SK)
        error = None if record.last_error is None else record.last_error[:MAX_ERROR]
        with conditional_write("update event delivery") as changed:
            item.update(
                actions=[
                    model.status.set(record.status.value),
                    model.gsi1pk.set(_events_gsi_pk(record.status.value)),
                    model.attempts.set(record.attempts),
                    model.next_attempt_at.set(record.next_attempt_at),
                    model.delivered_json.set(json.dumps(record.delivered_to)),
                    model.last_error.set(error) if error is not None else model.last_error.remove(),
                ],
                condition=model.pk.exists() & (model.attempts == expected_attempts),
            )
        if not changed.failed:
            return True
        self.get_event(event.event_id)  # NotFound when it is not there at all
        return False
