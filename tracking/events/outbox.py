"""The event each registry change writes, in the same transaction, to the outbox."""

from __future__ import annotations

import uuid

from tracking.entities import (
    AliasChange,
    EventType,
    HistoryAction,
    OutboxRecord,
    RegistryEvent,
    TrafficPolicy,
)

_TYPES = {
    HistoryAction.REGISTER: EventType.MODEL_VERSION_REGISTERED,
    HistoryAction.PROMOTE: EventType.ALIAS_MOVED,
    HistoryAction.ROLLBACK: EventType.ALIAS_MOVED,
    HistoryAction.ARCHIVE: EventType.MODEL_VERSION_ARCHIVED,
    HistoryAction.TRAFFIC: EventType.TRAFFIC_CHANGED,
}


def event_id_for(change_id: str) -> str:
    """A UUID for the change: its own id when it is one (the registry's are), else derived.

    Deterministic, so a transaction retried after a lost answer carries the same event id and
    its outbox condition (the id must not exist) keeps the event single.
    """
    try:
        return str(uuid.UUID(hex=change_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tracking-change:{change_id}"))


def event_for(change: AliasChange, policy: TrafficPolicy | None = None) -> RegistryEvent:
    """The event of one history entry (``policy``: the traffic policy a TRAFFIC change set)."""
    traffic = None
    if policy is not None:
        traffic = policy.model_dump(
            mode="json", include={"policy_id", "weights", "shadow", "sticky", "revision"}
        )
    return RegistryEvent(
        event_id=event_id_for(change.change_id),
        type=_TYPES[HistoryAction(change.action)],
        model=change.name,
        version=change.to_version,
        alias=change.alias,
        from_version=change.from_version,
        to_version=change.to_version,
        actor=change.actor,
        reason=change.reason,
        time=change.timestamp,
        traffic=traffic,
    )


def new_record(change: AliasChange, policy: TrafficPolicy | None = None) -> OutboxRecord:
    return OutboxRecord(event=event_for(change, policy), next_attempt_at=change.timestamp)
