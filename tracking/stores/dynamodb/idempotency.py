"""Idempotency records on DynamoDB (the ``IdempotencyStore`` port)."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.update import Action

from tracking.errors import Conflict
from tracking.stores.dynamodb.base import DynamoDBBase
from tracking.stores.dynamodb.errors import (
    _calling,
    conditional_write,
)
from tracking.stores.dynamodb.keys import _IDEMPOTENCY, _idempotency_pk
from tracking.stores.ports.idempotency import IdempotencyRecord, IdempotencyStore


class DynamoDBIdempotency(DynamoDBBase, IdempotencyStore):
    """One item per Idempotency-Key in the tracking table, expired by TTL."""

    # -- idempotency records -----------------------------------------------------------------

    def claim(
        self, key: str, fingerprint: str, now: int, expires_at: int
    ) -> IdempotencyRecord | None:
        """A conditional put (new or expired key); else a consistent read of the holder."""
        model = self._models.TrackingItem
        item = model(
            _idempotency_pk(key),
            _IDEMPOTENCY,
            fingerprint=fingerprint,
            status="in_progress",
            expires_at=expires_at,
        )
        for _ in range(3):
            with conditional_write("claim idempotency key") as held_by_another:
                item.save(condition=model.pk.does_not_exist() | (model.expires_at < now))
            if not held_by_another.failed:
                return None
            with _calling("get idempotency key"):
                try:
                    held = model.get(_idempotency_pk(key), _IDEMPOTENCY, consistent_read=True)
                except DoesNotExist:
                    continue  # released in between: claim again
            return _idempotency_from(key, held)
        raise Conflict("an Idempotency-Key is being claimed and released concurrently; retry")

    def complete(
        self, key: str, fingerprint: str, status: int, body: str, expires_at: int | None = None
    ) -> None:
        model = self._models.TrackingItem
        item = model(_idempotency_pk(key), _IDEMPOTENCY)
        actions: list[Action] = [
            model.status.set("completed"),
            model.response_status.set(status),
            model.response_body.set(body),
        ]
        if expires_at is not None:
            actions.append(model.expires_at.set(expires_at))
        # A failed condition: expired and taken over (or released), so nothing to record.
        with conditional_write("complete idempotency key"):
            item.update(actions=actions, condition=model.fingerprint == fingerprint)

    def release(self, key: str) -> None:
        model = self._models.TrackingItem
        item = model(_idempotency_pk(key), _IDEMPOTENCY)
        # A failed condition: completed meanwhile, and the answer stays.
        with conditional_write("release idempotency key"):
            item.delete(condition=model.status == "in_progress")


def _idempotency_from(key: str, item: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=key,
        fingerprint=item.fingerprint,
        status=item.status,
        response_status=None if item.response_status is None else int(item.response_status),
        response_body=item.response_body,
        expires_at=int(item.expires_at),
    )
